"""Which files the server may read, and uploads.

Paths that arrive over HTTP are relative names inside a root: the output folder (what the
server serves and what "use as input" points at), then the `--input-root` folders, in order.
Absolute paths, `~`, `..`, empty parts and any symbolic link on the way are refused, and so is
anything that is not a regular file. `GET /files/...` serves the output folder only.

Uploads are written to `uploads/` in the output folder under the hash of their bytes, after
the safe image loader has read them with the configured limits (format allow-list, file size,
pixel count): a file that is no image never reaches a tool.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from visionloop.errors import ImageError

UPLOADS = "uploads"
CHUNK = 1 << 20
_FORMAT_SUFFIX = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "BMP": ".bmp", "GIF": ".gif", "TIFF": ".tif"}


class Refused(Exception):
    """A path or upload the server will not take; `status` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 403):
        super().__init__(message)
        self.status = status


def _real(path: str | Path) -> Path:
    return Path(os.path.realpath(path))


class Roots:
    def __init__(self, out_dir: Path, input_roots: list[Path] = ()):
        self.out = _real(out_dir)
        self.inputs = [_real(p) for p in input_roots]

    @property
    def uploads(self) -> Path:
        return self.out / UPLOADS

    def all(self) -> list[Path]:
        return [self.out, *self.inputs]

    # --- names that come over HTTP ---------------------------------------------------------
    def _parts(self, name: str, what: str) -> list[str]:
        if not isinstance(name, str) or not name.strip():
            raise Refused(f"{what}: expected a file name inside the output folder or an input root", 400)
        if "\x00" in name:
            raise Refused(f"{what}: the name holds a NUL byte", 400)
        if name.startswith(("/", "\\", "~")) or (len(name) > 1 and name[1] == ":"):
            raise Refused(f"{what}: absolute paths are refused; give a name relative to the output folder "
                          "or an input root")
        parts = name.replace("\\", "/").split("/")
        if any(p in ("..",) for p in parts):
            raise Refused(f"{what}: '..' is refused")
        return [p for p in parts if p not in ("", ".")]

    def _walk(self, root: Path, parts: list[str], what: str) -> Path | None:
        """`root/parts` when it is a regular file reached without any link; None when absent."""
        path = root
        for i, part in enumerate(parts):
            path = path / part
            try:
                mode = os.lstat(path).st_mode
            except FileNotFoundError:
                return None
            except OSError as exc:
                raise Refused(f"{what}: {exc.strerror or exc}", 400) from None
            if stat.S_ISLNK(mode):
                raise Refused(f"{what}: symbolic links are refused")
            if i < len(parts) - 1 and not stat.S_ISDIR(mode):
                return None
        if path == root or not stat.S_ISREG(os.lstat(path).st_mode):
            raise Refused(f"{what}: not a regular file", 400)
        return path

    def input_file(self, name: str, what: str = "image") -> str:
        """The absolute path of an input named over HTTP, searched in every root in order."""
        parts = self._parts(name, what)
        for root in self.all():
            found = self._walk(root, parts, what)
            if found is not None:
                return str(found)
        raise Refused(f"{what}: {name!r} was not found in the output folder or the input roots", 404)

    def output_file(self, name: str) -> Path:
        """A file of the output folder, for `GET /files/...`."""
        found = self._walk(self.out, self._parts(name, "file"), "file")
        if found is None:
            raise Refused(f"file: {name!r} not found", 404)
        return found

    # --- paths the server itself recorded ----------------------------------------------------
    def relative(self, path: str | os.PathLike) -> str | None:
        """`path` relative to the output folder (with `/`), or None when it lies elsewhere."""
        try:
            rel = Path(os.path.abspath(path)).relative_to(self.out)
        except ValueError:
            try:
                rel = _real(path).relative_to(self.out)
            except (ValueError, OSError):
                return None
        return rel.as_posix()

    def inside(self, path: str | os.PathLike) -> bool:
        """Whether a recorded absolute path (a manifest's input, a history row's image) lies in a
        root, links resolved, so that a replay may read it."""
        real = _real(path)
        return any(real == root or root in real.parents for root in self.all())


def save_upload(stream, filename: str, roots: Roots, max_pixels: int, max_file_mb: float) -> str:
    """Read an uploaded file (a binary file object), check it with the safe loader, and keep it
    as `uploads/<sha256>.<ext>`; the absolute path. `Refused` (400/413) for a file that is too
    large or is not an image the loader accepts."""
    from visionloop.images import load_image, peek
    from visionloop.images.save import atomic_write_bytes, ensure_output_dir

    limit = int(max_file_mb * 1024 * 1024)
    data = bytearray()
    while True:
        chunk = stream.read(CHUNK)
        if not chunk:
            break
        data += chunk
        if len(data) > limit:
            raise Refused(f"upload {filename!r}: larger than the {max_file_mb:g} MB limit", 413)
    if not data:
        raise Refused(f"upload {filename!r}: the file is empty", 400)
    folder = ensure_output_dir(roots.uploads)
    digest = hashlib.sha256(data).hexdigest()[:32]
    temp = folder / f".{digest}.part"
    atomic_write_bytes(temp, bytes(data))
    try:
        load_image(temp, max_pixels=max_pixels, max_file_mb=max_file_mb)  # decodes it all: a bad file fails here
        with peek(temp) as img:
            suffix = _FORMAT_SUFFIX.get(img.format, ".img")
        final = folder / f"{digest}{suffix}"
        os.replace(temp, final)
    except ImageError as exc:
        raise Refused(f"upload {filename!r}: {str(exc).replace(str(temp), 'the file')}", 400) from None
    finally:
        if temp.exists():
            temp.unlink()
    return str(final)
