"""The chat engine: one line in, answers out. The terminal front end (`agent.chat.repl`) and the
tests both drive `Chat.handle()`.

Lines starting with one of the chat's own commands (`/help`, `/images`, `/save`, ...) are
handled here; every other line goes to the `route_message` hook, and the tool call it gives
back is submitted to the core `Loop`. The chat never calls a model itself: even a follow-up
question (sent to LLaVA with the earlier turns) is a job on the loop.
"""

from __future__ import annotations

import json
import logging
import shlex
import shutil
import subprocess
import sys
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable

from agent.chat.output import Output
from agent.errors import Cancelled, VisionloopError
from agent.images import IMAGE_SUFFIXES
from agent.chat.router import ensure_registered, wants_help
from agent.chat.session import Session
from agent.tools import ToolCall, ToolResult, run_tool

log = logging.getLogger(__name__)

HELP = {
    "/help": "this list; /TOOL --help shows a tool's options",
    "/image PATH": "add an image to the conversation",
    "/images": "list the images (#1, #2, ...)",
    "/open #N": "open an image in the system viewer",
    "/see [#N] QUESTION": "ask about images",
    "/caption [#N]": "describe an image (--detail long for more)",
    "/read [#N]": "read the text in an image",
    "/draw PROMPT": "draw a new picture",
    "/edit [--box x0,y0,x1,y1] PROMPT": "change a region of the current image",
    "/restyle PROMPT": "redraw the current image in a style",
    "/run WORKFLOW [name=value ...]": "run a workflow (its image input defaults to the current image); "
                                      "--input NAME=VALUE and --dry-run as in `visionloop run`",
    "/reset": "forget the conversation and the images",
    "/save FILE": "save the transcript (.json for JSON)",
    "/quit": "leave (or Ctrl-D); Ctrl-C cancels the job in hand",
}
CHAT_COMMANDS = ("/help", "/image", "/images", "/open", "/run", "/reset", "/save", "/quit", "/exit")


class Chat:
    """One conversation: a `Session`, the registry, the loop and an `Output`."""

    def __init__(self, registry, loop, session: Session | None = None, output: Output | None = None,
                 config=None):
        self.registry = registry
        self.loop = loop
        self.config = config if config is not None else loop.ctx.config
        self.out = output or Output()
        # the loop's context loads images with the configured limits (pixel count, file size)
        self.session = session or Session(check_image=lambda p: loop.ctx.load_image(p).size)
        ensure_registered(registry.pm)

    # -- one line ------------------------------------------------------------------------
    def handle(self, line: str) -> bool:
        """Answer one line; False means the user asked to leave."""
        line = line.strip()
        if not line:
            return True
        word = line.split(maxsplit=1)[0].lower()
        if word in ("/quit", "/exit"):
            return False
        self.session.add_turn("user", line)
        try:
            handler = getattr(self, "cmd_" + word[1:], None) if word in CHAT_COMMANDS else None
            if handler is not None:
                handler(line[len(word):].strip())
            else:
                self._route(line)
        except VisionloopError as exc:  # a bad path, an unknown #N: one line, the chat goes on
            self._error(str(exc))
        return True

    def _error(self, text: str) -> None:
        self.session.add_turn("error", text)
        self.out.error(text)

    def _say(self, text: str, kind: str = "note") -> None:
        self.session.add_turn("note", text)
        self.out.say(text, kind)

    def _route(self, line: str) -> None:
        # Attach mentioned paths first so that every router sees them (and a bad one is
        # answered before any router guesses).
        if wants_help(line):  # "help", "what can you do?": the help text, not a question for LLaVA
            self.cmd_help("")
            return
        if not line.startswith("/"):
            self.session.attach_mentions(line)
        try:
            answer = self.registry.pm.hook.route_message(message=line, session=self.session,
                                                         tools=self.registry.tools)
        except Exception as exc:  # a plugin's bug: one line, the chat goes on (-v shows where)
            log.info("router plugin failed", exc_info=True)
            self._error(f"router plugin failed: {type(exc).__name__}: {exc}")
            return
        if answer is None:
            self._say("I'm not sure what to do with that (/help lists the commands).", "question")
        elif isinstance(answer, str):
            self._say(answer, "question")
        elif isinstance(answer, ToolCall):
            self.run_call(answer)
        else:
            self._error(f"a router returned {type(answer).__name__}, not a ToolCall or a question")

    # -- running -------------------------------------------------------------------------
    def wait(self, future: Future) -> Any:
        """The job's value, or None if the user cancelled it (Ctrl-C) in the meantime."""
        from agent.loop import wait

        try:
            return wait(self.loop, future)
        except (KeyboardInterrupt, Cancelled):
            if self.out.streamed:  # a half-streamed answer: finish its line first
                self.out.streamed = False
                print(file=self.out.out)
            self._say("cancelled", "cancelled")
            return None

    def submit(self, job: Callable, stream: bool = True, conversation: bool = False) -> Future:
        """Queue `job(ctx)` with streaming into this chat's output while it runs; with
        `conversation`, tools that ask for it (`see`) also get the earlier turns (`ctx.history`)."""
        def streamed(ctx):
            ctx.on_text = self.out.token if self.out.stream and stream else None
            ctx.history = self.session.history_for if conversation else None
            try:
                return job(ctx)
            finally:
                ctx.on_text = None
                ctx.history = None

        return self.loop.submit(streamed)

    def run_call(self, call: ToolCall) -> list[ToolResult]:
        tool = self.registry.tool(call.tool)
        # several results from one call would stream into one line: print those at the end
        many = bool(tool.each) and isinstance(call.args.get(tool.each), list) and len(call.args[tool.each]) > 1
        results = self.wait(self.submit(lambda ctx: run_tool(tool, call.args, ctx), stream=not many,
                                        conversation=True)) or []
        for result in results:
            self.show(result)
        return results

    def show(self, result: ToolResult) -> None:
        """Record a result (its images join the list) and print it."""
        produced = self.session.add_result(result)
        data = result.data
        if result.ok and data.get("question") and data.get("images") and result.text:
            self.session.remember(data["images"], data["question"], result.text)
        self.out.result(result, [p.number for p in produced])

    # -- the chat's own commands -----------------------------------------------------------
    def cmd_help(self, rest: str) -> None:
        lines = [f"  {name:<34} {text}" for name, text in HELP.items()]
        extra = sorted(set(self.registry.tools) - {"see", "caption", "read-text", "draw", "edit", "restyle"})
        if extra:
            lines.append("  other tools: " + ", ".join(f"/{t}" for t in extra))
        lines.append("Or just type: questions about an image, 'describe it', 'read the text', 'draw ...', "
                     "'make it look like ...', 'put ... in the top left'. #N names an image; it/this = the latest.")
        self._say("\n".join(lines), "help")

    def cmd_image(self, rest: str) -> None:
        if not rest:
            raise VisionloopError("usage: /image PATH")
        for path in _split(rest):
            pic = self.session.attach(path)
            self._say(f"#{pic.number} {pic.path} ({pic.size[0]}x{pic.size[1]})", "image")

    def cmd_images(self, rest: str) -> None:
        if not self.session.images:
            self._say("no images yet: add one with /image PATH, or mention its path", "images")
            return
        self._say("\n".join(p.label() for p in self.session.images), "images")

    def cmd_reset(self, rest: str) -> None:
        self.session.reset()
        self._say("forgot the conversation and the images", "reset")

    def cmd_save(self, rest: str) -> None:
        if not rest:
            raise VisionloopError("usage: /save FILE")
        target = self.session.save(_split(rest)[0])
        self._say(f"saved the transcript to {target}", "saved")

    def cmd_open(self, rest: str) -> None:
        words = _split(rest)
        pic = self.session.image(int(words[0].lstrip("#"))) if words and words[0].lstrip("#").isdigit() \
            else self.session.current
        if pic is None:
            raise VisionloopError("usage: /open #N (no images yet)")
        viewer = find_viewer()
        if viewer is None:
            self._say(f"no image viewer found here; #{pic.number} is at {pic.path}", "open")
            return
        subprocess.Popen([*viewer, pic.path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
        self._say(f"opened #{pic.number} {pic.path}", "open")

    def cmd_run(self, rest: str) -> None:
        """`/run WORKFLOW [name=value ...]`, with the CLI's `--input/-i NAME=VALUE` and
        `--dry-run` (the plan, as `visionloop run --dry-run` prints it; nothing loads)."""
        try:
            from agent.workflows.plan import add_run_arguments, parse_inputs
            from agent.workflows import check_inputs, load_workflow, run_workflow
        except ImportError:
            raise VisionloopError("workflows are not available in this installation") from None
        from agent.chat.slash_commands import _ArgError, _ChatParser

        # the CLI's own arguments, plus bare name=value words; errors raise instead of exiting
        parser = _ChatParser(prog="/run", add_help=False, allow_abbrev=False)
        add_run_arguments(parser)
        parser.add_argument("words", nargs="*", metavar="NAME=VALUE")
        try:
            ns, unknown = parser.parse_known_intermixed_args(_split(rest))
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
        wf = load_workflow(ns.workflow, self.config, self.registry)
        for key in wf.image_inputs():
            value = inputs.get(key)
            if value is not None and value.startswith("#") and value[1:].isdigit():
                inputs[key] = self.session.image(int(value[1:])).path
            elif value is None and self.session.current is not None and \
                    wf.spec.inputs[key].default is None:
                inputs[key] = self.session.current.path
        out_dir = Path(self.loop.ctx.out_dir)
        if ns.dry_run:
            self.show_plan(wf, check_inputs(wf, inputs), out_dir)
            return
        outcome = self.wait(self.submit(lambda ctx: run_workflow(wf, inputs, ctx, self.registry, out_dir)))
        if outcome is not None:
            self.show_outcome(outcome)

    def show_plan(self, wf, values: dict, out_dir: Path) -> None:
        """The CLI's dry-run plan, built and worded by the same code (`agent.workflows.plan`)."""
        from agent.workflows.plan import build_plan, format_plan

        plan = build_plan(wf, values, self.config, self.registry, out_dir)
        if self.out.json_mode:
            with self.out.lock:
                print(json.dumps(plan, ensure_ascii=False, default=str), file=self.out.out, flush=True)
            self.session.add_turn("note", f"planned workflow {wf.name}")
            return
        self._say(format_plan(plan), "plan")

    def show_outcome(self, outcome) -> None:
        """A workflow's result: its image outputs join the list."""
        numbers = []
        for value in outcome.outputs.values():
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, str) and Path(item).suffix.lower() in IMAGE_SUFFIXES \
                        and Path(item).is_file():
                    numbers.append(self.session.attach(item, source=outcome.workflow).number)
        if self.out.json_mode:
            with self.out.lock:
                print(json.dumps({**outcome.to_json(), "image_numbers": numbers}, ensure_ascii=False, default=str),
                      file=self.out.out, flush=True)
            return
        if not outcome.ok:
            self._error(f"workflow {outcome.workflow} failed: {outcome.error}")
            return
        lines = [f"workflow {outcome.workflow}: {outcome.status} ({outcome.run_dir})"]
        lines += [f"  {k}: {v}" for k, v in outcome.outputs.items()]
        lines += [f"#{n} {self.session.image(n).path}" for n in numbers]
        self._say("\n".join(lines), "workflow")

    def announce(self, text: str) -> None:
        """For the watcher: a line between turns."""
        self.out.say(text, "watch")


def find_viewer() -> list[str] | None:
    """The system's image viewer command, where there is one."""
    if sys.platform == "darwin":
        return ["open"]
    if sys.platform.startswith("win"):
        return ["cmd", "/c", "start", ""]
    for name in ("xdg-open", "gio"):
        found = shutil.which(name)
        if found:
            return [found, "open"] if name == "gio" else [found]
    return None


def _split(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError:
        return text.split()
