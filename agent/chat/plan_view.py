"""A plan in the chat: validated as a workflow, shown, agreed to, run, edited or saved.

- In a terminal the plan is shown and waits: Enter runs it, `e` opens it as YAML in `$EDITOR`,
  `n` drops it (any other line drops it too and is answered as usual).
- Piped, it is printed (with `--json`, one object: `{"plan": {"steps": [...]}, "workflow_yaml": ...}`)
  and runs only with `chat --yes`, or `plan: {confirm: never}` in the config.
- `/plan MESSAGE` shows the plan and never runs it; `/save NAME` after a plan writes it to the
  workflows folder (the attached picture becomes the `image` input), so `visionloop run NAME
  --input image=other.png` reruns it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shlex
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from visionloop.chat.output import json_line
from visionloop.errors import VisionloopError

log = logging.getLogger(__name__)
HINT = "Enter runs it, e opens it in $EDITOR, n drops it"


@dataclass
class Shown:
    """The plan last shown: the planner's `Plan` and its workflow text (edited or not)."""

    plan: object
    text: str


def plan_line(chat, line: str, run: bool = True, always: bool = False) -> bool:
    """The `plan_message` hook on `line`; with `always`, a one-step plan for a single request too.
    True when a plan (or a question) was given."""
    from visionloop.chat.planner import Plan, make_plan

    try:
        plan = chat.registry.pm.hook.plan_message(message=line, session=chat.session, tools=chat.registry.tools)
    except Exception as exc:  # a plugin's bug: one line, the chat goes on (-v shows where)
        log.info("planner plugin failed", exc_info=True)
        chat._error(f"planner plugin failed: {type(exc).__name__}: {exc}")
        return True
    if plan is None and always:
        plan = make_plan(line, chat.session, chat.registry.tools, always=True)
    if plan is None:
        return False
    if isinstance(plan, str):
        chat._say(plan, "question")
    elif isinstance(plan, Plan):
        offer(chat, plan, run=run)
    else:
        chat._error(f"a planner returned {type(plan).__name__}, not a Plan or a question")
    return True


def validate(chat, text: str, source: str = "the plan"):
    """The workflow of `text` as `visionloop validate` checks it; `VisionloopError` listing the problems."""
    from visionloop.workflows import Workflow, WorkflowError, check_text

    spec, problems = check_text(text, source, chat.registry, chat.config)
    if problems:
        raise WorkflowError(problems)
    return Workflow(spec=spec, path=None, text=text, sha256=hashlib.sha256(text.encode()).hexdigest(), source=source)


def confirm_mode(chat) -> str:
    plan = getattr(chat.config, "plan", None)
    return getattr(plan, "confirm", "ask") if plan is not None else "ask"


def offer(chat, plan, run: bool = True) -> None:
    """Validate, show and (when agreed) run a plan."""
    from visionloop.chat.model_choice import choose_unplaced

    if plan.unplaced and not choose_unplaced(chat, plan):  # asked back: nothing to show
        return
    shown = Shown(plan, plan.yaml())
    validate(chat, shown.text)
    chat.last_plan = shown
    show(chat, shown)
    if not run:
        return
    if chat.terminal and confirm_mode(chat) == "ask":
        chat.pending_plan = shown
        chat._say(HINT, "question")
    elif chat.yes or confirm_mode(chat) == "never":
        run_shown(chat, shown)
    else:
        chat._say("not run: run the chat with --yes (or set plan.confirm: never) to run plans", "question")


def show(chat, shown: Shown) -> None:
    if chat.out.json_mode:
        with chat.out.lock:
            print(json_line({**shown.plan.to_json(), "workflow_yaml": shown.text}), file=chat.out.out, flush=True)
        chat.session.add_turn("note", "plan:\n" + shown.text)
        return
    import yaml

    lines = ["plan:"]
    routed = {s.id: s for s in shown.plan.steps}
    for i, step in enumerate(yaml.safe_load(shown.text)["steps"], 1):  # as it will run (edited or not)
        args = ", ".join(f"{k}={v!r}" if not isinstance(v, list) else f"{k}={', '.join(map(str, v))}"
                         for k, v in (step.get("with") or {}).items())
        how = routed.get(step["id"])
        how = f"  [chosen by the model, p={how.scores.get('probability', '-')}]" if how and how.routed_by == "model" else ""
        lines.append(f"  {i}. {step['id']}: {step['tool']} {args}{how}")
    given = {**shown.plan.used_images(), **({"seed": shown.plan.seed} if "${inputs.seed}" in shown.text else {})}
    if given:
        lines.append("  inputs: " + ", ".join(f"{k} = {v}" for k, v in given.items()))
    chat._say("\n".join(lines), "plan")


def answer_pending(chat, line: str) -> bool:
    """The line after a plan was shown in a terminal: True when it was the answer (run, edit, drop)."""
    shown, chat.pending_plan = chat.pending_plan, None
    word = line.strip().lower()
    if word in ("", "y", "yes", "run"):
        run_shown(chat, shown)
    elif word in ("e", "edit"):
        edit(chat, shown)
    elif word in ("n", "no", "drop"):
        chat._say("dropped the plan", "note")
    else:
        return False  # a new message: the plan is dropped, the line answered as usual
    return True


def run_shown(chat, shown: Shown) -> None:
    from visionloop.chat.run_command import StepText, show_outcome
    from visionloop.workflows import run_workflow

    wf = validate(chat, shown.text)
    inputs = {k: v for k, v in shown.plan.images.items() if k in wf.spec.inputs}
    steps = StepText(chat.out)
    out_dir = Path(chat.loop.ctx.out_dir)
    outcome = chat.wait(chat.submit(lambda ctx: steps.run(ctx, lambda: run_workflow(wf, inputs, ctx, chat.registry,
                                                                                    out_dir))))
    chat.out.end_stream()
    if outcome is not None:
        show_outcome(chat, outcome, steps.texts)


def edit(chat, shown: Shown) -> None:
    """Open the plan's YAML in $EDITOR; the edited text is validated and shown again."""
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False, encoding="utf-8") as f:
        f.write(shown.text)
    try:
        def job():
            return subprocess.run([*shlex.split(editor), f.name], check=False)

        runner = getattr(chat, "in_terminal", None)  # the terminal front end puts its prompt away meanwhile
        runner(job) if runner is not None else job()
        text = Path(f.name).read_text(encoding="utf-8")
    except OSError as exc:
        raise VisionloopError(f"EDITOR={editor}: could not run it: {exc.strerror or exc}") from None
    finally:
        Path(f.name).unlink(missing_ok=True)
    validate(chat, text, "the edited plan")
    edited = Shown(shown.plan, text)
    chat.last_plan = chat.pending_plan = edited
    chat._say("edited plan:\n" + text.rstrip() + "\n" + HINT, "plan")


def save(chat, name: str) -> Path:
    """`/save NAME`: the last plan as workflow NAME in the config's workflows folder."""
    import yaml
    from visionloop.paths import user_path

    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]*", name):
        raise VisionloopError(f"/save {name}: a workflow name is letters, digits, _ and - (e.g. /save describe-paint)")
    data = yaml.safe_load(chat.last_plan.text)
    data["name"] = name
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
    validate(chat, text, name)
    folder = user_path(chat.config.workflows)
    target = folder / f"{name}.yaml"
    if target.exists() and str(target) not in chat.session.saved:
        raise VisionloopError(f"/save {name}: {target} already exists; give another name")
    from visionloop.workflows.library import find_in_folders, workflow_folders

    other = find_in_folders(name, [f for f in workflow_folders(chat.config) if f.path.resolve() != folder.resolve()])
    if other is not None and not target.exists():  # a bundled or user workflow of that name would be hidden
        raise VisionloopError(f"/save {name}: a workflow {name} already exists ({other}); give another name")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise VisionloopError(f"/save {name}: cannot write {target}: {exc.strerror or exc}") from None
    chat.session.saved.add(str(target))
    return target


def rerun_hint(name: str, text: str) -> str:
    """`visionloop run NAME --input ...=PICTURE ...` with the saved plan's required inputs."""
    import yaml

    inputs = (yaml.safe_load(text) or {}).get("inputs") or {}
    wanted = [key for key, spec in inputs.items()
              if not (isinstance(spec, dict) and "default" in spec)]
    return f"visionloop run {name}" + "".join(f" --input {key}=PICTURE" for key in wanted)
