"""Paths the user typed: `~` and `~user` expanded only where they name a real home folder.

`Path.expanduser()` raises a bare `RuntimeError` for `~nosuchuser/x.png`, and a chat message
like "draw ~5 cats" is no path at all. Every place that turns user text into a path goes
through `user_path`, which expands what can be expanded and otherwise says so in one line.
"""

from __future__ import annotations

import os
from pathlib import Path

from agent.errors import InputError


def home_of(text: str) -> str | None:
    """The home folder that a leading `~` or `~user` in `text` names, or None when it names none
    (no leading `~`, an unknown user, no home folder for the current user)."""
    if not text.startswith("~"):
        return None
    expanded = os.path.expanduser(text)  # unchanged when the user is unknown; never raises
    return None if expanded == text else expanded


def user_path(value: str | os.PathLike, what: str = "") -> Path:
    """`value` as a Path with `~`/`~user` expanded. A leading `~user` that names no home folder
    is an `InputError` naming the value (and `what` it was for), never a traceback."""
    text = os.fspath(value)
    if not text.startswith("~"):
        return Path(text)
    home = home_of(text)
    if home is None:
        user = text[1:].split("/", 1)[0].split(os.sep, 1)[0]
        who = f"no user named {user!r}" if user else "no home folder for the current user"
        label = f"{what}: " if what else ""
        raise InputError(f"{label}{text}: '~{user}' names no home folder ({who}); "
                         f"write ./{text} for a file or folder whose name starts with '~'")
    return Path(home)


def maybe_user_path(text: str) -> Path | None:
    """`text` as a Path when it could be one (for free words in a chat message): `~` expanded where
    it names a home; None for words that cannot be a path (an unknown `~user`, NUL bytes, a name
    longer than the file system allows)."""
    if not text or "\x00" in text:
        return None
    if text.startswith("~"):
        home = home_of(text)
        if home is None:
            return None
        text = home
    if len(os.fsencode(text)) > 4096 or any(len(os.fsencode(part)) > 255 for part in Path(text).parts):
        return None
    return Path(text)
