"""Safe image loading: the one path every image takes into a model, and a guarded peek.

An allow-list of formats (so no EPS/FITS/PSD decoder ever runs), a file-size and a pixel limit
checked before decoding, the first frame of animations and multi-page files, EXIF orientation
applied, RGB out. Each failure is an `ImageError` naming the file and the reason.
`ImageFile.LOAD_TRUNCATED_IMAGES` is never touched (it is process-global).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
import struct
import zlib
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from visionloop.errors import ImageError
from visionloop.images.stdin import STDIN, claimed as stdin_claimed, stdin_file
from visionloop.paths import user_path

#: Pillow format names accepted on input. GIF and TIFF give their first frame/page.
ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF")
#: File-name endings of those formats: what a folder, a glob or a chat message offers as images.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")

DEFAULT_MAX_PIXELS = 50_000_000
DEFAULT_MAX_FILE_MB = 200.0

_MAGIC = [(b"<!doctype html", "HTML"), (b"<html", "HTML"), (b"PK\x03\x04", "ZIP archive"),
          (b"%PDF", "PDF"), (b"%!PS", "PostScript"), (b"SIMPLE  =", "FITS"), (b"8BPS", "PSD"),
          (b"\x1f\x8b", "gzip"), (b"{", "JSON/text")]


def _sniff(head: bytes) -> str:
    low = head.lstrip().lower()
    for magic, name in _MAGIC:
        if low.startswith(magic.lower()):
            return name
    try:
        head.decode("utf-8")
        return "text"
    except UnicodeDecodeError:
        return "unknown binary"


def load_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS,
               max_file_mb: float = DEFAULT_MAX_FILE_MB, mode: str = "RGB") -> Image.Image:
    """Open `path` safely and return a decoded, upright image in `mode` (RGB by default)."""
    if os.fspath(path) == STDIN and stdin_claimed():  # `-` on the command line: the bytes piped in
        try:
            return load_image(stdin_file(max_file_mb), max_pixels, max_file_mb, mode)
        except ImageError as exc:
            raise ImageError(STDIN, exc.reason) from None
    if "\x00" in os.fspath(path):  # from a workflow's YAML or a chat message: an ImageError like the rest
        raise ImageError(repr(os.fspath(path)), "not a usable file name (it contains a NUL byte)")
    p = user_path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise ImageError(p, "file not found") from None
    except OSError as exc:
        raise ImageError(p, f"cannot read file: {exc.strerror or exc}") from None
    problem = _not_a_file(st.st_mode)
    if problem:
        raise ImageError(p, problem)
    if st.st_size == 0:
        raise ImageError(p, "file is empty")
    if st.st_size > max_file_mb * 1_000_000:
        raise ImageError(p, f"file too large: {st.st_size / 1e6:.1f} MB > limit {max_file_mb:g} MB")
    try:
        with open(p, "rb") as fh:
            head = fh.read(64)
            fh.seek(0)
            try:
                img = Image.open(fh, formats=ALLOWED_FORMATS)
            except UnidentifiedImageError:
                raise ImageError(p, f"not a supported image (detected: {_sniff(head)}; "
                                    f"supported: PNG, JPEG, WebP, BMP, GIF, TIFF)") from None
            pixels = img.width * img.height
            if pixels > max_pixels:
                raise ImageError(p, f"image too large: {img.width}x{img.height} = {pixels:,} px > limit {max_pixels:,} px")
            if img.width < 1 or img.height < 1:
                raise ImageError(p, f"image has no pixels ({img.width}x{img.height})")
            if getattr(img, "n_frames", 1) > 1:
                img.seek(0)  # first frame of an animation, first page of a TIFF
            img.load()
            img = ImageOps.exif_transpose(img)
            if img.mode != mode:
                if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                    img = img.point(lambda v: v / 256).convert("L")
                if "A" in img.getbands() and mode == "RGB":
                    background = Image.new("RGBA", img.size, (255, 255, 255, 255))
                    img = Image.alpha_composite(background, img.convert("RGBA"))
                img = img.convert(mode)
            return img
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageError(p, _bomb_reason(exc, max_pixels)) from None
    except PermissionError:
        raise ImageError(p, "permission denied") from None
    except DECODE_ERRORS as exc:
        raise ImageError(p, decode_problem(exc)) from None
    except ValueError as exc:  # e.g. oversized PNG text chunks (Pillow raises ValueError)
        raise ImageError(p, f"cannot decode image: {exc}") from None


#: what Pillow raises for a file it cannot decode (and ValueError, for oversized text chunks)
DECODE_ERRORS = (OSError, SyntaxError, struct.error, zlib.error, EOFError)


def decode_problem(exc: Exception) -> str:
    """Why Pillow could not decode a file, in words."""
    text = str(exc)
    if "truncated" in text.lower() or isinstance(exc, EOFError):
        return "truncated image (the file is incomplete)"
    return f"cannot decode image: {text or type(exc).__name__}"


def _not_a_file(mode: int) -> str | None:
    """Why a path is no image file (a folder; a FIFO or a device, which would block or never
    end), or None for a regular file."""
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a device"),
             (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket"))
    if stat.S_ISREG(mode):
        return None
    return f"is {next((name for test, name in kinds if test(mode)), 'not a regular file')}, not an image file"


def _bomb_reason(exc: Exception, max_pixels: int) -> str:
    """Pillow refuses files past twice its own limit while opening them, before our check
    can run; say how large the image is, as our own check would."""
    found = re.search(r"\((\d+) pixels\)", str(exc))
    size = f"{int(found.group(1)):,} px" if found else "too many pixels"
    return f"image too large: {size} > limit {max_pixels:,} px (decompression bomb)"


@contextlib.contextmanager
def peek(path: str | os.PathLike, decode: bool = False):
    """Open an image we wrote or are asked about (not for a model: see `load_image`) with the
    same allow-list as loading; with `decode`, decode its pixels too. Every failure to open or
    decode is an `ImageError` naming the file; an error raised by the caller's own block passes
    through unchanged (it is not the image's fault)."""
    p = Path(path)
    try:
        problem = _not_a_file(os.stat(p).st_mode)
        if problem:  # Image.open would block on a FIFO, read /dev/zero for ever
            raise ImageError(p, problem)
        img = Image.open(p, formats=ALLOWED_FORMATS)
        try:
            if decode:
                img.load()
        except BaseException:
            img.close()
            raise
    except FileNotFoundError:
        raise ImageError(p, "file not found") from None
    except IsADirectoryError:
        raise ImageError(p, "is a folder, not an image file") from None
    except PermissionError:
        raise ImageError(p, "permission denied") from None
    except Image.DecompressionBombError as exc:
        raise ImageError(p, _bomb_reason(exc, Image.MAX_IMAGE_PIXELS * 2)) from None
    except UnidentifiedImageError:
        raise ImageError(p, "not a supported image (supported: PNG, JPEG, WebP, BMP, GIF, TIFF)") from None
    except (OSError, ValueError, SyntaxError, struct.error, zlib.error, EOFError) as exc:
        raise ImageError(p, f"not a readable image: {exc}") from None
    with img:
        yield img


# --- hashing -----------------------------------------------------------------------------------

def sha256_file(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes, read in 1 MiB blocks. `OSError` is left to the caller."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def pixels_sha256(path: str | os.PathLike) -> str:
    """A hash of the decoded pixels (mode, size, bytes): metadata chunks carry paths and
    timings that legitimately differ between runs, the pixels must not. Opens with the same
    allow-list as loading; raises `ImageError` for anything that is not a readable image."""
    with peek(path, decode=True) as img:
        h = hashlib.sha256(f"{img.mode}:{img.size}".encode())
        h.update(img.tobytes())
        return h.hexdigest()
