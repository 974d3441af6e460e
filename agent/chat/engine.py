"""The chat engine: one line in, answers out. The terminal front end (`visionloop.chat.repl`) and the
tests both drive `Chat.handle()`.

Lines starting with one of the chat's own commands (`/help`, `/images`, `/save`, ...) are
handled here; every other line goes to the `route_message` hook, and the tool call it gives
back is submitted to the core `Loop`. The chat never calls a model itself: even a follow-up
question (sent to LLaVA with the earlier turns) is a job on the loop.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import CancelledError, Future
from typing import Any, Callable

from visionloop.chat.output import Output
from visionloop.errors import Cancelled, VisionloopError
from visionloop.chat.planner import ensure_registered as ensure_planner
from visionloop.chat.router import ensure_registered, wants_help
from visionloop.chat.session import Session
from visionloop.chat.slash_commands import CHAT_COMMANDS, Refusal, split_words
from visionloop.chat.viewer import ViewerFailed, open_image
from visionloop.tools import ToolCall, ToolResult, run_tool

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
    "/edit [--box x0,y0,x1,y1 | --where WORDS] PROMPT": "change a region ('replace the sky with a sunset')",
    "/restyle [--style-image #N] PROMPT": "redraw the current image in a style (or say 'in the style of #2')",
    "/segment --where WORDS": "a mask of what the words name (or say 'segment the sky')",
    "/run WORKFLOW [#N] [name=value ...]": "run a workflow (its image input: #N, or the current image); "
                                           "--input NAME=VALUE and --dry-run as in `visionloop run`",
    "/plan MESSAGE": "show the plan for a request (several steps: 'describe it, then ...') without running it",
    "/reset": "forget the conversation and the images",
    "/save FILE": "save the transcript (.json for JSON); after a plan, /save NAME saves it as workflow NAME",
    "/quit": "leave (or Ctrl-D); Ctrl-C cancels the job in hand",
}
# The longest line the chat reads, in characters: far more than any prompt or question a model
# takes (tools check their own limits), short enough to route and echo safely.
MAX_LINE = 32 * 1024


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
        self._job: Future | None = None  # the job being waited for (`cancel`)
        ensure_registered(registry.pm)
        ensure_planner(registry.pm)
        self.last_plan = None  # the plan last shown (`visionloop.chat.plan_view.Shown`), for /save NAME
        self.pending_plan = None  # a plan shown in a terminal, waiting for Enter / e / n
        self.terminal = False  # set by the terminal front end: plans wait for an answer
        self.yes = False  # `chat --yes`: plans run without asking

    # -- one line ------------------------------------------------------------------------
    def handle(self, line: str) -> bool:
        """Answer one line; False means the user asked to leave. Whatever the line, the answer
        is printed (a mistake in one line) and the chat goes on."""
        if len(line) > MAX_LINE:
            self.refuse_long_line(len(line))
            return True
        if self.pending_plan is not None and self._answer_plan(line):
            return True
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
        except OSError as exc:  # a file the user named that the system refused
            self._error(f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else str(exc))
        except Exception as exc:  # a bug, not the user's mistake: one line (-v shows where), the chat goes on
            log.info("the chat failed on a line", exc_info=True)
            self._error(f"internal error ({type(exc).__name__}: {exc}); the chat goes on (-v shows where)")
        return True

    def refuse_long_line(self, length: int) -> None:
        """A line over `MAX_LINE`: said in one line, never echoed, never kept in the transcript."""
        self._error(f"that line is {length:,} characters long; the chat reads at most {MAX_LINE:,} "
                    f"per line, so nothing was done")

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
        if not line.startswith("/") and self._plan(line):
            return
        try:
            answer = self.registry.pm.hook.route_message(message=line, session=self.session,
                                                         tools=self.registry.tools)
        except Exception as exc:  # a plugin's bug: one line, the chat goes on (-v shows where)
            log.info("router plugin failed", exc_info=True)
            self._error(f"router plugin failed: {type(exc).__name__}: {exc}")
            return
        if answer is None:
            self._say("I'm not sure what to do with that (/help lists the commands).", "question")
        elif isinstance(answer, Refusal):  # a mistake (an unknown /command): an error, not a question
            self._error(str(answer))
        elif isinstance(answer, str):
            self._say(answer, "question")
        elif isinstance(answer, ToolCall):
            self.run_call(answer)
        else:
            self._error(f"a router returned {type(answer).__name__}, not a ToolCall or a question")

    def _plan(self, line: str, run: bool = True, always: bool = False) -> bool:
        """A message that chains requests: its plan shown (and run when agreed); False when the
        planners made none (a single request: the routers take it). See `visionloop.chat.plan_view`."""
        from visionloop.chat.plan_view import plan_line

        return plan_line(self, line, run, always)

    def _answer_plan(self, line: str) -> bool:
        from visionloop.chat import plan_view

        try:
            answered = plan_view.answer_pending(self, line)
        except VisionloopError as exc:
            self._error(str(exc))
            return True
        if answered:
            self.session.add_turn("user", line)
        return answered

    def cmd_plan(self, rest: str) -> None:
        """`/plan MESSAGE`: the plan, shown and never run."""
        if not rest.strip() or rest.lstrip().startswith("/"):
            raise VisionloopError("usage: /plan MESSAGE (e.g. /plan describe it, then make it look like a watercolour)")
        self.session.attach_mentions(rest)
        if not self._plan(rest.strip(), run=False, always=True):
            self._say("I'm not sure what to do with that (/help lists the commands).", "question")

    # -- running -------------------------------------------------------------------------
    def wait(self, future: Future) -> Any:
        """The job's value, or None if the user cancelled it (Ctrl-C) in the meantime."""
        from visionloop.loop import wait

        self._job = future
        try:
            return wait(self.loop, future)
        except (KeyboardInterrupt, Cancelled, CancelledError):  # CancelledError: cancelled while queued
            self.out.end_stream()  # a half-streamed answer: finish its line first
            self._say("cancelled", "cancelled")
            return None
        finally:
            self._job = None

    def cancel(self) -> bool:
        """Ctrl-C: cancel the chat's job in hand or in the queue (never the watcher's beside it);
        False when the chat is running none."""
        future = self._job
        if future is None or future.done():
            return False
        self.loop.cancel(future)
        return True

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
        lines = [f"  {name:<36} {text}" for name, text in HELP.items()]
        extra = sorted(set(self.registry.tools) - {"see", "caption", "read-text", "draw", "edit", "restyle"})
        if extra:
            lines.append("  other tools: " + ", ".join(f"/{t}" for t in extra))
        lines.append("Or just type: questions about an image, 'describe it', 'read the text', 'draw ...', "
                     "'make it look like ...', 'put ... in the top left'. #N names an image; it/this = the latest.")
        self._say("\n".join(lines), "help")

    def cmd_image(self, rest: str) -> None:
        paths = [word for word in split_words(rest, paths=True) if word.strip()]
        if not paths:
            raise VisionloopError("usage: /image PATH")
        for path in paths:  # each path gets its own line: a bad one does not drop the others
            try:
                pic = self.session.attach(path)
            except VisionloopError as exc:
                self._error(str(exc))
                continue
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
        words = [word for word in split_words(rest, paths=True) if word.strip()]
        if len(words) != 1:
            raise VisionloopError("usage: /save FILE" + (" (quote a name with spaces)" if words else ""))
        if self.last_plan is not None and "." not in os.path.basename(words[0]) and "/" not in words[0]:
            from visionloop.chat.plan_view import rerun_hint, save

            target = save(self, words[0])  # after a plan, a bare name is a workflow
            self._say(f"saved the plan as workflow {words[0]} ({target}); rerun it with "
                      f"{rerun_hint(words[0], target.read_text(encoding='utf-8'))}", "saved")
            return
        target = self.session.save(words[0])
        self._say(f"saved the transcript to {target}", "saved")

    def cmd_open(self, rest: str) -> None:
        words = split_words(rest)
        if len(words) > 1 or (words and not words[0].lstrip("#").isdecimal()):
            raise VisionloopError("usage: /open [#N] (the latest image without #N)")
        pic = self.session.image(words[0].lstrip("#")) if words else self.session.current
        if pic is None:
            raise VisionloopError("usage: /open #N (no images yet)")
        where = os.path.abspath(pic.path)
        try:
            opened = open_image(pic.path)
        except ViewerFailed as exc:  # e.g. xdg-open's exit 3 on a machine with no desktop
            raise VisionloopError(f"could not open #{pic.number} {pic.path}: no image viewer could open it "
                                  f"({exc}); the file is at {where}") from None
        except OSError as exc:
            raise VisionloopError(f"could not open #{pic.number} {pic.path}: {exc.strerror or exc}") from None
        if not opened:
            raise VisionloopError(f"could not open #{pic.number} {pic.path}: no image viewer found here; "
                                  f"the file is at {where}")
        self._say(f"opened #{pic.number} {pic.path}", "open")

    def cmd_run(self, rest: str) -> None:
        """`/run WORKFLOW [name=value ...]` (`visionloop.chat.run_command`)."""
        from visionloop.chat.run_command import run_command

        run_command(self, rest)

    def announce(self, text: str) -> None:
        """For the watcher: a line between turns."""
        self.out.say(text, "watch")
