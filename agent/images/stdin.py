"""An image piped in on standard input: `visionloop caption - < photo.jpg`, `curl ... | visionloop see - -q ...`.

The CLI turns `-` given for an image into the name `STDIN` (`<stdin>`) and `claim()`s standard
input for it (the chat never does: its stdin is the conversation). `load_image` then reads the
bytes once, at most the configured `images.max_file_mb` (one byte more tells it is over), keeps
them in a private temporary file and loads that with every check a file gets; messages and
records (`data`) name the image `<stdin>`.
"""

from __future__ import annotations

import atexit
import shutil
import sys
import tempfile
import threading
from pathlib import Path

from visionloop.errors import ImageError

#: what an image read from stdin is called, in messages and in `data`
STDIN = "<stdin>"
#: what stands for stdin on the command line
DASH = "-"

_lock = threading.Lock()
_claimed = False
_stream = None
_file: Path | None = None


def claim(stream=None) -> None:
    """Let `STDIN` mean the image on standard input (or on `stream`), read afresh, in this process."""
    global _claimed, _stream, _file
    with _lock:
        _claimed, _stream, _file = True, stream, None


def claimed() -> bool:
    return _claimed


def stdin_file(max_file_mb: float) -> Path:
    """The image read from stdin, as a file; read once, whoever asks first (`see - -` is one image)."""
    global _file
    with _lock:
        if _file is None:
            _file = _save(_read(max_file_mb))
        return _file


def _read(max_file_mb: float) -> bytes:
    stream = _stream if _stream is not None else sys.stdin
    if stream is None:
        raise ImageError(STDIN, "there is no standard input to read the image from")
    try:
        terminal = stream.isatty()
    except (AttributeError, ValueError):  # replaced or closed
        terminal = False
    if terminal:
        raise ImageError(STDIN, "stdin is a terminal, not an image: pipe one in, e.g. "
                                "visionloop caption - < photo.jpg")
    limit = int(max_file_mb * 1_000_000)
    source = getattr(stream, "buffer", stream)  # the bytes under a text stream
    data = bytearray()
    while len(data) <= limit:
        piece = source.read(limit + 1 - len(data))
        if not piece:
            break
        data += piece
    if not data:
        raise ImageError(STDIN, "nothing was piped in (stdin is empty)")
    if len(data) > limit:
        raise ImageError(STDIN, f"file too large: more than the limit of {max_file_mb:g} MB was piped in")
    return bytes(data)


def _save(data: bytes) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="visionloop-stdin-"))
    atexit.register(shutil.rmtree, folder, True)
    path = folder / "stdin"
    path.write_bytes(data)
    return path


def _reset() -> None:
    """Forget the claim and the bytes read (tests)."""
    global _claimed, _stream, _file
    with _lock:
        _claimed, _stream, _file = False, None, None
