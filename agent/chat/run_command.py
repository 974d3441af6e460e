"""`/run WORKFLOW [name=value ...]` in the chat: the CLI's `visionloop run` arguments, the current
image as the workflow's image input, and the plan or the outcome shown as the chat shows things."""

from __future__ import annotations

from pathlib import Path

from visionloop.chat.output import json_line
from visionloop.chat.slash_commands import _ArgError, _ChatParser, split_words
from visionloop.errors import VisionloopError
from visionloop.images import IMAGE_SUFFIXES


def run_command(chat, rest: str) -> None:
    """`/run WORKFLOW [name=value ...]`, with the CLI's `--input/-i NAME=VALUE` and
    `--dry-run` (the plan, as `visionloop run --dry-run` prints it; nothing loads)."""
    try:
        from visionloop.workflows.plan import add_run_arguments, parse_inputs
        from visionloop.workflows import check_inputs, load_workflow, run_workflow
    except ImportError:
        raise VisionloopError("workflows are not available in this installation") from None

    # the CLI's own arguments, plus bare name=value words; errors raise instead of exiting
    parser = _ChatParser(prog="/run", add_help=False, allow_abbrev=False)
    add_run_arguments(parser)
    parser.add_argument("words", nargs="*", metavar="NAME=VALUE")
    try:
        ns, unknown = parser.parse_known_intermixed_args(split_words(rest))
    except _ArgError as exc:
        if "-i/--input" in str(exc):
            raise VisionloopError("/run: --input needs NAME=VALUE") from None
        raise VisionloopError("usage: /run WORKFLOW [--dry-run] [name=value | --input NAME=VALUE ...]") from None
    pairs = []
    for pair in [*ns.inputs, *ns.words, *unknown]:  # unknown: `--seed=3` is taken as seed=3
        key, eq, value = pair.partition("=")
        pairs.append(f"{key.strip().lstrip('-').replace('-', '_')}={value}" if eq and key.strip("-") else pair)
    inputs = parse_inputs(pairs, bad="/run: expected name=value (or --input NAME=VALUE), got {pair!r}",
                          twice="/run: input {name!r} given twice")
    wf = load_workflow(ns.workflow, chat.config, chat.registry)
    for key in wf.image_inputs():
        value = inputs.get(key)
        if value is not None and value.startswith("#") and value[1:].isdecimal():
            inputs[key] = chat.session.image(value[1:]).path
        elif value is None and chat.session.current is not None and \
                wf.spec.inputs[key].default is None:
            inputs[key] = chat.session.current.path
    out_dir = Path(chat.loop.ctx.out_dir)
    if ns.dry_run:
        show_plan(chat, wf, check_inputs(wf, inputs), out_dir)
        return
    outcome = chat.wait(chat.submit(lambda ctx: run_workflow(wf, inputs, ctx, chat.registry, out_dir)))
    if outcome is not None:
        show_outcome(chat, outcome)

def show_plan(chat, wf, values: dict, out_dir: Path) -> None:
    """The CLI's dry-run plan, built and worded by the same code (`visionloop.workflows.plan`)."""
    from visionloop.workflows.plan import build_plan, format_plan

    plan = build_plan(wf, values, chat.config, chat.registry, out_dir)
    if chat.out.json_mode:
        with chat.out.lock:
            print(json_line(plan), file=chat.out.out, flush=True)
        chat.session.add_turn("note", f"planned workflow {wf.name}")
        return
    chat._say(format_plan(plan), "plan")

def show_outcome(chat, outcome) -> None:
    """A workflow's result: its image outputs join the list."""
    numbers = []
    for value in outcome.outputs.values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and Path(item).suffix.lower() in IMAGE_SUFFIXES \
                    and Path(item).is_file():
                numbers.append(chat.session.attach(item, source=outcome.workflow).number)
    if chat.out.json_mode:
        with chat.out.lock:
            print(json_line({**outcome.to_json(), "image_numbers": numbers}),
                  file=chat.out.out, flush=True)
        return
    if not outcome.ok:
        chat._error(f"workflow {outcome.workflow} failed: {outcome.error}")
        return
    lines = [f"workflow {outcome.workflow}: {outcome.status} ({outcome.run_dir})"]
    lines += [f"  {k}: {v}" for k, v in outcome.outputs.items()]
    lines += [f"#{n} {chat.session.image(n).path}" for n in numbers]
    chat._say("\n".join(lines), "workflow")
