"""Atomic, confined saving: sanitised names inside the output folder, never through a link.

A result is published under a name no entry has yet (a dangling or foreign symlink counts as
taken, so it is never followed), created with O_EXCL|O_NOFOLLOW, then filled by temp file +
fsync + `os.replace`. PNGs carry the AUTOMATIC1111 `parameters` chunk and the `visionloop` chunk.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import tempfile
import unicodedata
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin

from visionloop.errors import VisionloopError
from visionloop.images.metadata import a1111_parameters
from visionloop.paths import user_path

_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}


def safe_stem(text: str, fallback: str = "image", max_len: int = 60) -> str:
    """A file-name stem made from free text: no separators, control characters, leading
    dots or dashes, or reserved Windows names; at most `max_len` characters."""
    text = unicodedata.normalize("NFKC", str(text))
    text = re.sub(r"[^\w\-]+", "-", text, flags=re.UNICODE).strip("-._ ")
    text = text[:max_len].strip("-._ ")
    if not text or text.lower() in _RESERVED:
        return fallback
    return text


def ensure_output_dir(folder: str | os.PathLike) -> Path:
    """Create `folder` if needed and check it is writable; raise a one-line error otherwise."""
    root = user_path(folder)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # a file, a device or a link to one (mkdir says only "File exists")
        what = "a broken symbolic link" if not root.exists() else "not a folder"
        raise VisionloopError(f"{root}: output path exists and is {what}") from None
    except NotADirectoryError:
        raise VisionloopError(f"{root}: cannot create output folder: a part of the path is a file, "
                              "not a folder") from None
    except OSError as exc:
        raise VisionloopError(f"{root}: cannot create output folder: {exc.strerror or exc}") from None
    if not root.is_dir():
        raise VisionloopError(f"{root}: output path exists and is not a folder")
    try:  # a real write: os.access says yes to root on /sys, to read-only mounts over NFS, ...
        fd, probe = tempfile.mkstemp(dir=root, prefix=".visionloop-probe-", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise VisionloopError(f"{root}: output folder is not writable: {exc.strerror or exc}") from None
    return root


def confined_path(root: Path, name: str) -> Path:
    """`root/name`, refusing anything that would land outside `root`. The folders on the way are
    resolved (a linked output folder is the user's choice); the last component is not: a link
    there is an entry like any other, and writers never follow it (`lexists`, O_NOFOLLOW)."""
    if not name or os.path.isabs(name) or name.startswith("~") or ".." in Path(name).parts:
        raise VisionloopError(f"{name!r}: output names must stay inside {root}")
    candidate = root / name
    final = candidate.parent.resolve() / candidate.name
    if not final.parent.is_relative_to(root.resolve()):
        raise VisionloopError(f"{name!r}: output names must stay inside {root}")
    return final


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (os.umask() can only
    be read by setting it, which would race with other threads creating files)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the whole new one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp makes the file 0600; a published result gets the usual mode (0666 less umask)
        # so that a web server or a share can read the output folder.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """`obj` as UTF-8 JSON, atomically. Text that is no valid Unicode (a file name whose bytes are
    not UTF-8 reaches Python as lone surrogates) is written as `\\udcff` escapes: still valid JSON."""
    text = json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n"
    try:
        data = text.encode()
    except UnicodeEncodeError:
        data = (json.dumps(obj, indent=2, ensure_ascii=True, default=str) + "\n").encode()
    atomic_write_bytes(Path(path), data)


def unique_name(root: Path, stem: str, suffix: str = ".png") -> Path:
    """A name in `root` that no file has yet: `stem.png`, `stem-1.png`, ..."""
    stem = safe_stem(stem)
    for i in range(0, 100_000):
        name = f"{stem}{'' if i == 0 else f'-{i}'}{suffix}"
        path = confined_path(root, name)
        if not os.path.lexists(path):  # a dangling link is taken too: never write through one
            return path
    raise VisionloopError(f"{root}: no free file name for {stem!r}")


def save_image(image: Image.Image, folder: str | os.PathLike, stem: str, record: dict | None = None) -> Path:
    """Save `image` as PNG under `folder` with a unique sanitised name and metadata; return its path."""
    root = ensure_output_dir(folder)
    path = unique_name(root, stem)
    info = PngImagePlugin.PngInfo()
    if record is not None:
        info.add_text("parameters", a1111_parameters(record))
        info.add_text("visionloop", json.dumps(record, ensure_ascii=False, default=str))
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    try:
        # exclusive publish: create the name first so a parallel writer cannot take it
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except FileExistsError:
        return save_image(image, folder, stem, record)
    except OSError as exc:
        raise VisionloopError(f"{path}: cannot write image: {exc.strerror or exc}") from None
    os.close(fd)
    try:
        atomic_write_bytes(path, buf.getvalue())
    except OSError as exc:  # a full disk: no empty placeholder is left under the result's name
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise VisionloopError(f"{path}: cannot write image: {exc.strerror or exc}") from None
    return path
