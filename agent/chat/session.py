"""Chat state: the turns, the attached images (#1, #2, ...), the last result, and the memory
of earlier questions that lets a follow-up ("and what colour is it?") go to LLaVA in context.

A `Session` holds data only: it never runs a tool or a model, so tests drive it directly.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from visionloop.errors import ImageError, InputError
from visionloop.images import IMAGE_SUFFIXES
from visionloop.paths import maybe_user_path, user_path

# A quoted path (spaces allowed) or one whitespace-separated word.
_TOKEN = re.compile(r"\"([^\"]+)\"|'([^']+)'|(\S+)")
_TRAILING = "?!.,;:)]}\"'"
_REF = re.compile(r"#(\d+)\b")


def looks_like_path(word: str) -> bool:
    """A free word is taken for a path only when it looks like one: a folder separator, a
    leading `~` or `.`, or an image file's suffix ("draw ~5 cats": `~5` is text)."""
    seps = tuple(s for s in ("/", os.sep, os.altsep) if s)
    return any(s in word for s in seps) or word.startswith(("~", ".")) or word.lower().endswith(IMAGE_SUFFIXES)


def mentioned_file(word: str) -> Path | None:
    """The file a free word names, when it looks like a path and the file exists; None for
    every other word (an unknown `~user`, a name too long to be a file, ...), never an error."""
    if not looks_like_path(word):
        return None
    try:
        path = maybe_user_path(word)
    except ValueError:  # text that no file name can hold (a lone surrogate)
        return None
    return path if path is not None and os.path.isfile(path) else None


@dataclass
class Picture:
    """One image in the conversation: its number, path, size and who brought it in."""

    number: int
    path: str
    size: tuple[int, int]
    source: str = "you"  # "you", or the tool that produced it

    def label(self) -> str:
        return f"#{self.number} {self.path} ({self.size[0]}x{self.size[1]}, {self.source})"


@dataclass
class Turn:
    """One entry of the transcript: who spoke and what was said."""

    role: str  # "user", "assistant", "note" or "error"
    text: str
    tool: str | None = None
    images: list[str] = field(default_factory=list)


@dataclass
class Exchange:
    """A question LLaVA answered about some images: the memory follow-ups are asked in."""

    images: tuple[str, ...]
    question: str
    answer: str


class Session:
    """Turns, images and the last result of one chat.

    `check_image(path)` loads an image (with the configured limits) and returns its size; it
    raises `ImageError` for anything that is not a usable image.
    """

    def __init__(self, check_image: Callable[[str], tuple[int, int]] | None = None):
        self._check_image = check_image or _image_size
        self.images: list[Picture] = []
        self.turns: list[Turn] = []
        self.exchanges: list[Exchange] = []
        self.last_result = None
        self.last_box: tuple[int, int, int, int] | None = None
        self.saved: set[str] = set()  # transcripts this session wrote: the only files /save overwrites

    # -- images --------------------------------------------------------------------------
    def attach(self, path: str, source: str = "you") -> Picture:
        """Add an image (or find it, if already attached) and return it with its number."""
        given = user_path(path)
        try:
            resolved = str(given.resolve())
        except (RuntimeError, OSError):  # a symlink loop (RuntimeError before Python 3.13)
            raise ImageError(path, "is a symlink loop, not an image file") from None
        for pic in self.images:
            if str(Path(pic.path).resolve()) == resolved:
                return pic
        size = self._check_image(str(given))
        pic = Picture(len(self.images) + 1, str(given), tuple(size), source)
        self.images.append(pic)
        return pic

    def image(self, number: int | str) -> Picture:
        """Image `#number` (`number` may be the digits as typed, however many)."""
        digits = str(number)
        if digits.isdecimal() and len(digits) <= 9 and 1 <= int(digits) <= len(self.images):
            return self.images[int(digits) - 1]
        have = f"#1 to #{len(self.images)}" if self.images else "none yet; add one with /image PATH"
        raise InputError(f"there is no image #{digits} (images: {have})")

    @property
    def current(self) -> Picture | None:
        """The most recent image: what "it", "this" and "that picture" mean."""
        return self.images[-1] if self.images else None

    def refs(self, message: str) -> list[Picture]:
        """The images a message names as `#N`, in order, without repeats."""
        out: list[Picture] = []
        for match in _REF.finditer(message):
            pic = self.image(match.group(1))
            if pic not in out:
                out.append(pic)
        return out

    def attach_mentions(self, message: str) -> str:
        """Attach every image path mentioned in `message` and return the message with each
        path replaced by its `#N`. Idempotent: a path already attached keeps its number.

        A word is a path only when it looks like one and the file exists (`mentioned_file`); a
        word with an image's suffix that names no usable file raises `ImageError`.
        """
        message = _close_quote(message)
        pieces: list[str] = []
        last = 0
        for match in _TOKEN.finditer(message):
            quoted = match.group(3) is None
            raw = match.group(1) or match.group(2) or match.group(3)
            word = raw if quoted else raw.rstrip(_TRAILING)
            if mentioned_file(word) is None:
                if word.lower().endswith(IMAGE_SUFFIXES):
                    missing_image(word)
                continue  # an ordinary word ("and/or", "/see", "#2", "~5")
            pic = self.attach(word)
            start = match.start() if quoted else match.start(3)
            pieces += [message[last:start], f"#{pic.number}"]
            last = match.end() if quoted else start + len(word)
        pieces.append(message[last:])
        return "".join(pieces)

    # -- turns ---------------------------------------------------------------------------
    def add_turn(self, role: str, text: str, tool: str | None = None, images: list[str] = ()) -> None:
        self.turns.append(Turn(role, text, tool, list(images)))

    def add_result(self, result) -> list[Picture]:
        """Record a tool result; the images it produced join the list. Returns them."""
        self.last_result = result
        produced = [self.attach(path, source=result.tool) for path in result.images]
        if result.error:
            self.add_turn("error", result.error, result.tool)
        else:
            self.add_turn("assistant", result.text, result.tool, [p.path for p in produced])
        return produced

    def remember(self, images: list[str], question: str, answer: str) -> None:
        self.exchanges.append(Exchange(tuple(images), question, answer))

    def history_for(self, images: list[str],
                    fits: Callable[[list[tuple[str, str]]], bool]) -> tuple[list[tuple[str, str]], int]:
        """The earlier (question, answer) turns about the same images, oldest first, trimmed
        so that `fits(history)` holds: the oldest turns are dropped first. Returns the kept
        turns and how many were dropped."""
        key = tuple(images)
        turns: list[tuple[str, str]] = []
        for ex in reversed(self.exchanges):  # only the unbroken run about these images
            if ex.images != key:
                break
            turns.insert(0, (ex.question, ex.answer))
        dropped = 0
        while turns and not fits(turns):
            turns.pop(0)
            dropped += 1
        return turns, dropped

    def reset(self) -> None:
        """Forget everything: turns, images, memory and the last result (not which transcripts
        this session wrote, so a later `/save` to the same name still replaces its own file)."""
        saved = self.saved
        self.__init__(self._check_image)
        self.saved = saved

    # -- transcript ----------------------------------------------------------------------
    def transcript(self) -> str:
        lines = []
        for turn in self.turns:
            prefix = {"user": "> ", "assistant": "", "note": "note: ", "error": "error: "}.get(turn.role, "")
            tool = f"[{turn.tool}] " if turn.tool and turn.role == "assistant" else ""
            lines.append(prefix + tool + turn.text)
            lines.extend(f"  image: {path}" for path in turn.images)
        return "\n".join(lines) + "\n"

    def save(self, path: str) -> Path:
        """Write the transcript: JSON for a `.json` name, plain text otherwise (atomically)."""
        from visionloop.images import atomic_write_bytes, atomic_write_json

        target = user_path(path)
        if target.suffix.lower() in IMAGE_SUFFIXES:  # "/save photo.png" would overwrite a picture
            raise InputError(f"{path}: a transcript is text; give a .txt or .json name")
        if target.is_dir():
            raise InputError(f"{path}: is a folder; give a file name")
        if not target.parent.is_dir():
            raise InputError(f"{path}: folder {target.parent} does not exist")
        key = str(target.parent.resolve() / target.name)
        if os.path.lexists(target) and key not in self.saved:  # nothing lost: never someone else's file
            raise InputError(f"{path}: already exists and this chat did not write it; give a new name")
        try:
            if target.suffix.lower() == ".json":
                atomic_write_json(target, {"turns": [asdict(t) for t in self.turns],
                                           "images": [asdict(p) for p in self.images]})
            else:
                atomic_write_bytes(target, self.transcript().encode("utf-8"))
        except OSError as exc:  # a read-only folder, a full disk: one line, the chat goes on
            raise InputError(f"{path}: cannot write the transcript: {exc.strerror or exc}") from None
        self.saved.add(key)
        return target


def _close_quote(message: str) -> str:
    """`what is in "a b.png`: a quote left open before the name of a file that exists is closed
    after it (otherwise "b.png" alone would be looked for)."""
    for quote in ('"', "'"):
        if message.count(quote) % 2:
            start = message.rindex(quote) + 1
            name = message[start:].rstrip(_TRAILING + " \t")
            if name and mentioned_file(name) is not None:
                return f"{message[:start]}{name}{quote}{message[start + len(name):]}"
    return message


def missing_image(word: str) -> None:
    """Raise the one-line reason why `word`, which names an image, is no file."""
    path = user_path(word)  # an unknown ~user, a NUL byte, a name too long: said so
    if os.path.isdir(path):
        raise ImageError(word, "is a folder, not an image file")
    raise ImageError(word, "is not a regular file" if os.path.exists(path) else "file not found")


def _image_size(path: str) -> tuple[int, int]:
    from visionloop.images import load_image

    with load_image(path) as img:
        return img.size
