"""How the chat speaks: plain text in a terminal or a pipe, or one JSON object per result."""

from __future__ import annotations

import json
import re
import sys
import threading

from visionloop.tools import ToolResult

# The longest word a message echoes back whole: room for any real path, not for a pasted blob.
LONGEST_WORD = 300
_LONG_WORD = re.compile(r"\S{%d,}" % (LONGEST_WORD + 1))


# Control characters (C0 but newline and tab, DEL, C1): an ANSI escape or a bell in what the user
# typed, a file name or a model's answer must never reach the terminal raw.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_JSON_CONTROL = re.compile(r"[\x7f-\x9f]")  # json.dumps escapes the C0 ones itself


def visible(text: str) -> str:
    """`text` with each control character written out (`\\x1b`), so it prints as text."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group(0)):02x}", text)


def json_line(obj) -> str:
    """One JSON line with every control character escaped (`\\u009b` too: the same text, safe)."""
    text = json.dumps(obj, ensure_ascii=False, default=str)
    return _JSON_CONTROL.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)


def shorten_words(text: str) -> str:
    """`text` with each word longer than `LONGEST_WORD` cut to its start and end and its length:
    a message quoting what the user typed never echoes a pasted blob whole."""
    return _LONG_WORD.sub(lambda m: f"{m.group(0)[:200]}...{m.group(0)[-40:]} ({len(m.group(0)):,} characters)", text)


class Output:
    """How the chat speaks: plain text, or one JSON object per result (`--json`).

    Plain answers go to stdout and errors to stderr; with `stream=True` LLaVA's tokens are
    written as they come. The streams are looked up on each write so that prompt_toolkit's
    `patch_stdout` can print above the prompt. One lock keeps the watcher's announcements
    from cutting into an answer.
    """

    def __init__(self, json_mode: bool = False, stream: bool = False, out=None, err=None):
        self.json_mode = json_mode
        self.stream = stream and not json_mode
        self._out, self._err = out, err
        self.lock = threading.RLock()
        self.streamed = False

    @property
    def out(self):
        return self._out or sys.stdout

    @property
    def err(self):
        return self._err or sys.stderr

    def _json(self, tool, text="", images=(), data=None, error=None) -> None:
        obj = {"tool": tool, "text": text, "images": list(images), "data": data or {}, "error": error}
        print(json_line(obj), file=self.out, flush=True)

    def say(self, text: str, kind: str = "note") -> None:
        text = shorten_words(text)
        with self.lock:
            if self.json_mode:
                self._json(None, text, data={"kind": kind})
            else:
                print(visible(text), file=self.out, flush=True)

    def error(self, text: str) -> None:
        text = shorten_words(text)
        with self.lock:
            if self.json_mode:
                self._json(None, error=text, data={"kind": "error"})
            else:
                # in a terminal the answer and the error share the screen; piped, stderr keeps stdout clean
                print(f"error: {visible(text)}", file=self.out if self.stream else self.err, flush=True)

    def token(self, text: str) -> None:
        if self.stream:
            with self.lock:
                self.out.write(visible(text))
                self.out.flush()
                self.streamed = True

    def end_stream(self) -> bool:
        """End the line of streamed text, if one is open, so that what follows starts on its own
        line; True when there was one."""
        with self.lock:
            streamed, self.streamed = self.streamed, False
            if streamed:
                print(file=self.out, flush=True)
            return streamed

    def result(self, result: ToolResult, numbers: list[int]) -> None:
        with self.lock:
            if self.json_mode:
                payload = result.to_json()
                payload["data"] = {**payload["data"], "image_numbers": numbers}
                print(json_line(payload), file=self.out, flush=True)
                return
            streamed = self.end_stream()
            if result.error:
                self.error(result.error)
                return
            if not streamed and result.text:
                print(visible(result.text), file=self.out)
            for number, path in zip(numbers, result.images):
                print(f"#{number} {visible(path)}", file=self.out)
            for note in result.data.get("notes", []):
                print(f"note: {visible(str(note))}", file=self.out)
            self.out.flush()
