"""Safe image loading and atomic, metadata-carrying saving: the one path every tool uses.

Loading: an allow-list of formats (so no EPS/FITS/PSD decoder ever runs), a file-size and a
pixel limit checked before decoding, the first frame of animations and multi-page files,
EXIF orientation applied, RGB out. Each failure is an `ImageError` naming the file and the
reason. `ImageFile.LOAD_TRUNCATED_IMAGES` is never touched (it is process-global).

Saving: sanitised names confined to the output folder (checked after resolving symlinks),
temp file + fsync + `os.replace`, a PNG `parameters` chunk in the AUTOMATIC1111 layout and a
`visionloop` chunk with the full JSON record.
"""

from __future__ import annotations

import hashlib
import contextlib
import json
import os
import re
import struct
import tempfile
import unicodedata
import zlib
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from agent.errors import ImageError, VisionloopError

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
    p = Path(path).expanduser()
    try:
        st = p.stat()
    except FileNotFoundError:
        raise ImageError(p, "file not found") from None
    except OSError as exc:
        raise ImageError(p, f"cannot read file: {exc.strerror or exc}") from None
    if p.is_dir():
        raise ImageError(p, "is a folder, not an image file")
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
    except (OSError, SyntaxError, struct.error, zlib.error, EOFError) as exc:
        text = str(exc)
        if "truncated" in text.lower() or isinstance(exc, EOFError):
            raise ImageError(p, "truncated image (the file is incomplete)") from None
        raise ImageError(p, f"cannot decode image: {text or type(exc).__name__}") from None
    except ValueError as exc:  # e.g. oversized PNG text chunks (Pillow raises ValueError)
        raise ImageError(p, f"cannot decode image: {exc}") from None


def _bomb_reason(exc: Exception, max_pixels: int) -> str:
    """Pillow refuses files past twice its own limit while opening them, before our check
    can run; say how large the image is, as our own check would."""
    found = re.search(r"\((\d+) pixels\)", str(exc))
    size = f"{int(found.group(1)):,} px" if found else "too many pixels"
    return f"image too large: {size} > limit {max_pixels:,} px (decompression bomb)"


# --- saving ------------------------------------------------------------------------------------

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
    root = Path(folder).expanduser()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VisionloopError(f"{root}: cannot create output folder: {exc.strerror or exc}") from None
    if not root.is_dir():
        raise VisionloopError(f"{root}: output path exists and is not a folder")
    if not os.access(root, os.W_OK | os.X_OK):
        raise VisionloopError(f"{root}: output folder is not writable")
    return root


def confined_path(root: Path, name: str) -> Path:
    """`root/name`, refusing anything that would land outside `root` once symlinks resolve."""
    if not name or os.path.isabs(name) or name.startswith("~") or ".." in Path(name).parts:
        raise VisionloopError(f"{name!r}: output names must stay inside {root}")
    final = (root / name).resolve()
    if not final.is_relative_to(root.resolve()):
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
    atomic_write_bytes(Path(path), (json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n").encode())


def a1111_parameters(record: dict) -> str:
    """The AUTOMATIC1111 `parameters` text for a generation record."""
    from agent.models.schedulers import a1111_sampler  # light: no torch, no diffusers

    lines = [str(record.get("prompt", ""))]
    if record.get("negative_prompt"):
        lines.append(f"Negative prompt: {record['negative_prompt']}")
    fields = [("Steps", record.get("steps")), ("Sampler", a1111_sampler(record.get("scheduler"), record.get("scheduler_name"))),
              ("CFG scale", record.get("guidance")), ("Seed", record.get("seed")),
              ("Size", f"{record['width']}x{record['height']}" if record.get("width") else None),
              ("Denoising strength", record.get("strength")), ("Model", record.get("model"))]
    lines.append(", ".join(f"{k}: {v}" for k, v in fields if v is not None))
    return "\n".join(lines)


def unique_name(root: Path, stem: str, suffix: str = ".png") -> Path:
    """A name in `root` that no file has yet: `stem.png`, `stem-1.png`, ..."""
    stem = safe_stem(stem)
    for i in range(0, 100_000):
        name = f"{stem}{'' if i == 0 else f'-{i}'}{suffix}"
        path = confined_path(root, name)
        if not path.exists():
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
    import io

    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    try:
        # exclusive publish: create the name first so a parallel writer cannot take it
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
        os.close(fd)
        atomic_write_bytes(path, buf.getvalue())
    except FileExistsError:
        return save_image(image, folder, stem, record)
    except OSError as exc:
        raise VisionloopError(f"{path}: cannot write image: {exc.strerror or exc}") from None
    return path


@contextlib.contextmanager
def _peek(p: Path):
    """Open an image we wrote or are asked about (not for a model: see `load_image`) with the
    same allow-list as loading, every failure an `ImageError` naming the file."""
    try:
        with Image.open(p, formats=ALLOWED_FORMATS) as img:
            yield img
    except FileNotFoundError:
        raise ImageError(p, "file not found") from None
    except IsADirectoryError:
        raise ImageError(p, "is a folder, not an image file") from None
    except Image.DecompressionBombError as exc:
        raise ImageError(p, _bomb_reason(exc, Image.MAX_IMAGE_PIXELS * 2)) from None
    except UnidentifiedImageError:
        raise ImageError(p, "not a supported image (supported: PNG, JPEG, WebP, BMP, GIF, TIFF)") from None
    except (OSError, ValueError, SyntaxError, struct.error, zlib.error, EOFError) as exc:
        raise ImageError(p, f"not a readable image: {exc}") from None


def read_metadata(path: str | os.PathLike) -> dict:
    """What an image carries: `parameters` (text) and `visionloop` (dict), when present."""
    p = Path(path)
    with _peek(p) as img:
        text = dict(getattr(img, "text", {}) or {})
        size = img.size
        fmt = img.format
    out: dict[str, Any] = {"file": str(p), "format": fmt, "size": f"{size[0]}x{size[1]}"}
    if "parameters" in text:
        out["parameters"] = text["parameters"]
    if "visionloop" in text:
        try:
            out["visionloop"] = json.loads(text["visionloop"])
        except json.JSONDecodeError:
            out["visionloop"] = text["visionloop"]
    return out


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
    with _peek(Path(path)) as img:
        img.load()
        h = hashlib.sha256(f"{img.mode}:{img.size}".encode())
        h.update(img.tobytes())
        return h.hexdigest()
