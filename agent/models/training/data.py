"""Training pictures: found in a folder, read by the safe loader, resized and center-cropped to
the training resolution once, and served in an order that is a pure function of the seed and
the step (so a resumed run sees exactly the batches an uninterrupted one would).

PIL and numpy do the transforms (no torchvision, no datasets): shorter side scaled to the
resolution (bicubic, as the diffusers recipe), the middle square kept, pixels to [-1, 1].
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from visionloop.errors import ImageError, InputError
from visionloop.images import IMAGE_SUFFIXES, load_image, sha256_file
from visionloop.paths import user_path

MIN_PICTURES = 2


@dataclass
class Picture:
    path: Path
    sha256: str
    size: tuple[int, int]  # as read (after EXIF orientation)
    pixels: np.ndarray = field(repr=False)  # resolution x resolution x 3, uint8
    caption: str = ""
    caption_source: str = ""  # txt, llava, fixed, jsonl

    def record(self, folder: Path) -> dict:
        return {"file": _relative(self.path, folder), "sha256": self.sha256, "size": list(self.size),
                "caption": self.caption, "caption_source": self.caption_source}


def _relative(path: Path, folder: Path) -> str:
    try:
        return str(path.relative_to(folder))
    except ValueError:
        return str(path)


def find_pictures(folder: str | Path) -> tuple[Path, list[Path]]:
    """The training folder and its image files (by name; hidden files and sub-folders left out)."""
    root = user_path(folder, "folder")
    if not root.exists():
        raise InputError(f"{root}: folder not found")
    if not root.is_dir():
        raise InputError(f"{root}: not a folder (train takes a folder of pictures)")
    try:
        files = sorted(p for p in root.iterdir()
                       if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and not p.is_dir())
    except OSError as exc:
        raise InputError(f"{root}: cannot read the folder: {exc.strerror or exc}") from None
    if not files:
        raise InputError(f"{root}: no pictures in this folder (looked for {', '.join(IMAGE_SUFFIXES)}); "
                         f"training needs at least {MIN_PICTURES}")
    return root, files


def resize_center_crop(image, resolution: int) -> np.ndarray:
    """Shorter side to `resolution`, then the centred square: uint8 H x W x 3."""
    from PIL import Image

    w, h = image.size
    scale = resolution / min(w, h)
    size = (max(resolution, round(w * scale)), max(resolution, round(h * scale)))
    image = image.resize(size, Image.Resampling.BICUBIC)
    left, top = (size[0] - resolution) // 2, (size[1] - resolution) // 2
    return np.asarray(image.crop((left, top, left + resolution, top + resolution)).convert("RGB"), dtype=np.uint8)


def load_pictures(root: Path, files: list[Path], resolution: int, limits, warn: Callable[[str], None]) -> list[Picture]:
    """Every readable picture, transformed; each unreadable one skipped with one line through
    `warn`. Fewer than two left is an error naming the folder."""
    pictures = []
    for path in files:
        try:
            image = load_image(path, max_pixels=limits.max_pixels, max_file_mb=limits.max_file_mb)
            digest = sha256_file(path)
        except OSError as exc:
            warn(f"skipped {path}: cannot read: {exc.strerror or exc}")
            continue
        except (ImageError, InputError) as exc:  # "FILE: reason"
            warn(f"skipped {exc}")
            continue
        pictures.append(Picture(path=path, sha256=digest, size=image.size,
                                pixels=resize_center_crop(image, resolution)))
    if len(pictures) < MIN_PICTURES:
        skipped = len(files) - len(pictures)
        raise InputError(f"{root}: {len(pictures)} readable picture(s)"
                         f"{f' ({skipped} skipped)' if skipped else ''}; training needs at least {MIN_PICTURES}")
    return pictures


def to_unit(pixels: np.ndarray) -> np.ndarray:
    """uint8 H x W x 3 to float32 3 x H x W in [-1, 1] (the recipe's Normalize([0.5], [0.5]))."""
    return (pixels.astype(np.float32).transpose(2, 0, 1) / 127.5) - 1.0


def batch_order(seed: int, step: int, batch: int, count: int, flip: bool) -> list[tuple[int, bool]]:
    """The (picture index, flipped) pairs of `step` (0-based): sample g = step*batch + j is item
    g % count of epoch g // count, each epoch a fresh permutation drawn from (seed, epoch)."""
    out = []
    for j in range(batch):
        g = step * batch + j
        epoch, pos = divmod(g, count)
        perm = np.random.default_rng([seed, epoch]).permutation(count)
        flipped = bool(np.random.default_rng([seed, epoch, 1]).random(count)[pos] < 0.5) if flip else False
        out.append((int(perm[pos]), flipped))
    return out


def batch_pixels(pictures: list[Picture], order: list[tuple[int, bool]]) -> np.ndarray:
    """The batch as float32 B x 3 x H x W in [-1, 1]."""
    arrays = []
    for index, flipped in order:
        pixels = pictures[index].pixels
        arrays.append(to_unit(pixels[:, ::-1] if flipped else pixels))
    return np.ascontiguousarray(np.stack(arrays))
