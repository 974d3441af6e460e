"""What the terminal chat prints while its prompt is up: above the input line, never through it.

The prompt stays on screen for the whole conversation, so the next message can be typed while a
job runs. Everything printed meanwhile (answers, errors, the watcher's lines, progress) goes
through `LiveOutput`, installed as `sys.stdout` and `sys.stderr` (prompt_toolkit's `patch_stdout`
way): whole lines are printed with `run_in_terminal` (the prompt is erased, the lines written, the
prompt drawn again below them with what was typed so far), and a line not yet ended (an answer
streaming token by token, a progress bar redrawn with `\\r`) is shown live as part of the prompt,
just above the input line, until it ends. Nothing is ever written into the line being typed.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading

from prompt_toolkit.application import run_in_terminal
from prompt_toolkit.formatted_text import ANSI


class LiveOutput:
    """A text stream for `sys.stdout`/`sys.stderr` while `app` (the prompt) runs."""

    def __init__(self, app, original=None):
        self.app = app
        self.original = original or sys.__stdout__
        self._lock = threading.RLock()
        self._tail = ""  # the line not yet ended
        self._pending: list[str] = []  # whole lines waiting for the terminal

    # -- the file API that print(), logging and progress bars use --------------------------------
    def write(self, data: str) -> int:
        if not data:
            return 0
        with self._lock:
            done, newline, self._tail = (self._tail + data).rpartition("\n")
            if newline:
                self._pending.append(done + newline)
        if newline:
            self._print()
        self.app.invalidate()  # the live line changed (a no-op when the prompt is not up)
        return len(data)

    def flush(self) -> None:
        self.app.invalidate()

    def isatty(self) -> bool:
        return self.original.isatty()

    def fileno(self) -> int:
        return self.original.fileno()

    @property
    def encoding(self) -> str:
        return getattr(self.original, "encoding", None) or "utf-8"

    @property
    def errors(self) -> str:
        return getattr(self.original, "errors", None) or "strict"

    # -- the live line -------------------------------------------------------------------------
    def tail(self) -> str:
        """The line being written, as it shows now (a line redrawn with `\\r`: its latest state)."""
        return self._tail.rsplit("\r", 1)[-1]

    def message(self, prompt: str):
        """The prompt, with the live line above it while there is one."""
        def message():
            tail = "" if self.app.is_done else self.tail()  # the final drawing keeps only the prompt
            return ANSI(f"{tail}\n{prompt}") if tail else prompt
        return message

    # -- writing ---------------------------------------------------------------------------------
    def _print(self) -> None:
        loop = self.app.loop if self.app.is_running else None
        if loop is None:
            self._drain()
            return
        try:  # in the prompt's own event loop, in order
            loop.call_soon_threadsafe(lambda: run_in_terminal(self._drain, in_executor=False))
        except RuntimeError:  # the loop has just closed: the prompt is gone
            self._drain()

    def _drain(self) -> None:
        with self._lock:
            text, self._pending = "".join(self._pending), []
        if text:
            output = self.app.output
            output.enable_autowrap()
            output.write_raw(text)
            output.flush()

    def close(self) -> None:
        """Write what is still waiting, the unfinished line too (the prompt is gone by now)."""
        with self._lock:
            if self._tail:
                self._pending.append(self._tail)
                self._tail = ""
        self._drain()


@contextlib.contextmanager
def live_output(app):
    """`sys.stdout`, `sys.stderr` and the log handlers that write to them go through one
    `LiveOutput` while the block runs."""
    live = LiveOutput(app, sys.stdout)
    saved = sys.stdout, sys.stderr
    handlers = [h for h in logging.getLogger().handlers
                if isinstance(h, logging.StreamHandler) and h.stream in saved]
    streams = [h.setStream(live) for h in handlers]
    sys.stdout = sys.stderr = live
    try:
        yield live
    finally:
        sys.stdout, sys.stderr = saved
        for handler, stream in zip(handlers, streams):
            handler.setStream(stream)
        live.close()
