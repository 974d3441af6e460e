"""Live progress for one-shot commands: what is happening, as it happens, on a terminal.

Progress goes to stderr, and only when stderr is a terminal and neither `--json` nor `-q` was
given, so pipes and scripts see results only. Three kinds, each from the code doing the work:

- status lines (`Context.report`): a model's first load with its size and how long it took,
  each workflow step as it starts and ends;
- the denoising bar (diffusers' own tqdm bar, with steps per second and time left);
- streamed tokens (`Context.on_text`) for a one-image `see` or `caption` when stdout is a
  terminal: the answer appears as LLaVA writes it (on stdout, where the answer belongs).
"""

from __future__ import annotations

import sys
import threading
from typing import Callable


def wanted(args, json_mode: bool) -> bool:
    """Show progress? Only on a terminal, never under `--json` or `-q`/`--quiet`."""
    return _isatty(sys.stderr) and not json_mode and not getattr(args, "quiet", False)


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # replaced or closed
        return False


class StatusLines:
    """`report(line)`: one dim line on stderr per event, made safe for the terminal."""

    def __init__(self, stream=None):
        self._stream = stream
        self._lock = threading.Lock()

    def __call__(self, line: str) -> None:
        from visionloop.cli.app import one_line

        stream = self._stream or sys.stderr
        with self._lock:
            stream.write(f"\x1b[2m{one_line(line)}\x1b[0m\n")
            stream.flush()


class TokenStream:
    """`on_text(piece)`: writes the answer to stdout as it is decoded; `ended()` closes the
    line so that what follows starts on its own; `streamed` says whether anything was written."""

    def __init__(self, stream=None):
        self._stream = stream
        self.streamed = False

    def __call__(self, piece: str) -> None:
        from visionloop.cli.app import one_line

        if not piece:
            return
        stream = self._stream or sys.stdout
        stream.write(one_line(piece) if "\n" not in piece else "\n".join(map(one_line, piece.split("\n"))))
        stream.flush()
        self.streamed = True

    def ended(self) -> None:
        if self.streamed:
            (self._stream or sys.stdout).write("\n")
            (self._stream or sys.stdout).flush()


def streams_tokens(tool, values: dict, json_mode: bool) -> bool:
    """Stream this call's answer? A tool that writes text as it goes (`streams_text`), giving
    one answer (not one per image: `caption a.png b.png`), stdout a terminal, plain output."""
    if json_mode or not tool.streams_text or not _isatty(sys.stdout):
        return False
    each = values.get(tool.each) if tool.each else None
    return not (isinstance(each, list) and len(each) > 1)


Reporter = Callable[[str], None]
