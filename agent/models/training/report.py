"""What a person looks at while and after a LoRA trains: the progress bar (step, smoothed loss,
seconds per step, time left), `loss.png` (the loss curve, raw and smoothed) and the contact sheet
of the validation pictures over time. PIL only (no matplotlib).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

SMOOTHING = 0.9  # exponential moving average of the loss: what the bar and the curve show


def smooth(values: list[float], factor: float = SMOOTHING) -> list[float]:
    """Debiased exponential moving average (the first values are not pulled towards 0)."""
    out, avg = [], 0.0
    for i, v in enumerate(values, 1):
        avg = factor * avg + (1 - factor) * v
        out.append(avg / (1 - factor ** i))
    return out


class Smoother:
    """`add(loss)` gives the debiased moving average so far (what the bar shows)."""

    def __init__(self, history: list[float] = (), factor: float = SMOOTHING):
        self.factor, self.avg, self.count = factor, 0.0, 0
        for v in history:
            self.add(v)

    def add(self, value: float) -> float:
        self.count += 1
        self.avg = self.factor * self.avg + (1 - self.factor) * value
        return self.avg / (1 - self.factor ** self.count)


def clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


class Bar:
    """One line on a terminal's stderr, rewritten at most ten times a second."""

    def __init__(self, total: int, start: int = 0, stream=None, width: int = 24):
        self.total, self.start, self.width = total, start, width
        self.stream = stream or sys.stderr
        self.began = time.perf_counter()
        self._last = 0.0
        self._shown = False

    def update(self, step: int, loss: float, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self._last < 0.1 and step < self.total:
            return
        self._last = now
        done = step - self.start
        per_step = (now - self.began) / done if done else 0.0
        filled = int(self.width * step / max(self.total, 1))
        line = (f"\rtraining {step}/{self.total} [{'#' * filled}{'.' * (self.width - filled)}] "
                f"loss {loss:.4f}  {per_step:.2f} s/step  {clock(per_step * (self.total - step))} left ")
        self.stream.write(line)
        self.stream.flush()
        self._shown = True

    def close(self) -> None:
        if self._shown:
            self.stream.write("\n")
            self.stream.flush()
            self._shown = False


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow before 10.1
        return ImageFont.load_default()


def loss_plot(losses: list[float], path: Path, title: str = "") -> Path:
    """The loss per step (light) and its moving average (dark) as a PNG."""
    from PIL import Image, ImageDraw

    w, h, left, right, top, bottom = 900, 420, 70, 20, 36, 40
    img = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(img)
    font = _font(13)
    values = [v for v in losses if v == v]  # no NaN
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    pad = (hi - lo) * 0.05
    lo, hi = lo - pad, hi + pad
    n = max(len(losses), 2)

    def xy(i: int, v: float) -> tuple[float, float]:
        return (left + (w - left - right) * i / (n - 1), top + (h - top - bottom) * (hi - v) / (hi - lo))

    draw.rectangle((left, top, w - right, h - bottom), outline=(160, 160, 160))
    for k in range(5):  # value ticks
        v = lo + (hi - lo) * k / 4
        y = xy(0, v)[1]
        draw.line((left - 4, y, left, y), fill=(120, 120, 120))
        draw.text((4, y - 7), f"{v:.4f}", fill=(60, 60, 60), font=font)
    for k in range(5):  # step ticks
        i = round((n - 1) * k / 4)
        x = xy(i, lo)[0]
        draw.line((x, h - bottom, x, h - bottom + 4), fill=(120, 120, 120))
        draw.text((x - 10, h - bottom + 8), str(i + 1), fill=(60, 60, 60), font=font)
    if len(values) == len(losses) and losses:
        draw.line([xy(i, v) for i, v in enumerate(losses)] if len(losses) > 1 else [xy(0, losses[0])] * 2,
                  fill=(170, 200, 235), width=1)
        avg = smooth(losses)
        draw.line([xy(i, v) for i, v in enumerate(avg)] if len(avg) > 1 else [xy(0, avg[0])] * 2,
                  fill=(20, 70, 160), width=2)
    draw.text((left, 10), title or f"loss per step ({len(losses)} steps; dark: moving average)", fill="black",
              font=_font(15))
    return _save_png(img, path)


def contact_sheet(images: list[tuple[int, Path]], path: Path, columns: int = 6) -> Path | None:
    """The validation pictures in step order, each labelled with its step."""
    from PIL import Image, ImageDraw

    if not images:
        return None
    loaded = []
    for step, file in images:
        with Image.open(file) as im:
            loaded.append((step, im.convert("RGB")))
    cell = max(128, max(max(im.size) for _, im in loaded))
    label = 20
    cols = min(columns, len(loaded))
    rows = (len(loaded) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * cell, rows * (cell + label)), "white")
    draw = ImageDraw.Draw(sheet)
    font = _font(13)
    for k, (step, im) in enumerate(loaded):
        scale = cell / max(im.size)
        resample = Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.LANCZOS
        im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), resample)
        x, y = (k % cols) * cell, (k // cols) * (cell + label)
        sheet.paste(im, (x + (cell - im.width) // 2, y))
        draw.text((x + 4, y + cell + 3), f"step {step}", fill="black", font=font)
    return _save_png(sheet, path)


def _save_png(img, path: Path) -> Path:
    import io

    from visionloop.images import atomic_write_bytes

    buf = io.BytesIO()
    img.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
    return path
