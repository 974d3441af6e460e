"""Paths the user typed: `~` and `~user` expanded only where they name a real home folder,
and text that no file system can hold said so in one line.

`Path.expanduser()` raises a bare `RuntimeError` for `~nosuchuser/x.png`; a NUL byte or a name
longer than 255 bytes makes the first `stat` raise `ValueError`/`OSError`; and a chat message
like "draw ~5 cats" is no path at all. Every place that turns user text into a path goes through
`user_path` (a path is required) or `maybe_user_path` (a free word that may be one).
"""

from __future__ import annotations

import os
from pathlib import Path

from visionloop.errors import InputError

NAME_MAX, PATH_MAX = 255, 4096  # bytes in one file name, and in a whole path, on the common file systems


def home_of(text: str) -> str | None:
    """The home folder that a leading `~` or `~user` in `text` names, or None when it names none
    (no leading `~`, an unknown user, no home folder for the current user)."""
    if not text.startswith("~"):
        return None
    expanded = os.path.expanduser(text)  # unchanged when the user is unknown; never raises
    return None if expanded == text else expanded


def user_path(value: str | os.PathLike, what: str = "") -> Path:
    """`value` as a Path with `~`/`~user` expanded. An `InputError` naming the value (and `what`
    it was for), never a traceback, for a leading `~user` that names no home folder, a NUL byte,
    text that is no valid file name, or a name or path longer than file systems allow."""
    text = os.fspath(value)
    label = f"{what}: " if what else ""
    if "\x00" in text:
        raise InputError(f"{label}{text!r}: a file name cannot contain a NUL byte")
    if text.startswith("~"):
        home = home_of(text)
        if home is None:
            user = text[1:].split("/", 1)[0].split(os.sep, 1)[0]
            who = f"no user named {user!r}" if user else "no home folder for the current user"
            raise InputError(f"{label}{text}: '~{user}' names no home folder ({who}); "
                             f"write ./{text} for a file or folder whose name starts with '~'")
        text = home
    path = Path(text)
    try:
        longest = max((len(os.fsencode(part)) for part in path.parts), default=0)
        total = len(os.fsencode(text))
    except UnicodeEncodeError:
        raise InputError(f"{label}{text!r}: not a valid file name") from None
    if longest > NAME_MAX:
        raise InputError(f"{label}{_short(text)}: a name in this path is {longest} bytes long; "
                         f"file names are at most {NAME_MAX}")
    if total >= PATH_MAX:
        raise InputError(f"{label}{_short(text)}: the path is {total} bytes long; paths are shorter than {PATH_MAX}")
    return path


def resolved_path(value: str | os.PathLike, what: str = "") -> Path:
    """`user_path(value, what)` with every link resolved. A symlink loop (which `Path.resolve`
    reports as a bare `RuntimeError`) or a path that cannot be resolved is an `InputError`."""
    path = user_path(value, what)
    label = f"{what}: " if what else ""
    try:
        return path.resolve()
    except RuntimeError:
        raise InputError(f"{label}{_short(os.fspath(value))}: a symbolic link loop") from None
    except OSError as exc:
        raise InputError(f"{label}{_short(os.fspath(value))}: cannot resolve the path: {exc.strerror or exc}") from None


def maybe_user_path(text: str) -> Path | None:
    """`text` as a Path when it could be one (for free words in a chat message): `~` expanded where
    it names a home; None for words that cannot be a path (an unknown `~user`, a NUL byte, a name
    longer than the file system allows), never an error."""
    if not text:
        return None
    try:
        return user_path(text)
    except InputError:
        return None


def _short(text: str, keep: int = 60) -> str:
    """A long path as its start and end, so that a one-line message stays one readable line."""
    return text if len(text) <= 2 * keep else f"{text[:keep]}…{text[-keep:]}"
