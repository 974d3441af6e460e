"""How the watcher shows a file name: on one line, whatever the name holds.

A file name may hold a newline, a tab, an escape sequence or bytes that are not valid in the
file system's encoding (`\\udcff` after Python's surrogateescape). Every line the watcher
prints or logs goes through `shown` (a path or name) or `one_line` (a message that may quote
one), so that one event is always one line and a name cannot forge another line.
"""

from __future__ import annotations

import os


def shown(path: str | os.PathLike) -> str:
    """`path` as text, quoted like a Python string literal when it holds a character that is
    not printable (newline, tab, control or escape characters, undecodable bytes)."""
    text = os.fspath(path)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    return text if text.isprintable() else repr(text)


def one_line(text: object) -> str:
    """`text` with every character that is not printable written as its escape (`\\n`, `\\x1b`)."""
    s = str(text)
    if s.isprintable():
        return s
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in s)
