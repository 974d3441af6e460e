"""From what an engine found on a page to what `read-text` returns.

An engine's `page(image, lang)` gives a `Page`: every box it detected, with the text it read
there and a confidence, measured on the page as the engine read it (enlarged for small print,
turned upright). `assemble` then:

1. leaves out boxes with no text, and those below `min_confidence`: each is listed in
   `dropped` (top to bottom) with its reason, never left out silently;
2. puts the rest in reading order (`visionloop.models.ocr_layout`: paragraphs, columns, tables
   row by row);
3. maps every box back to the picture's own pixels.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from visionloop.models.ocr_layout import Block, arrange
from visionloop.models.reading_order import Line, TextBox, lines_text


@dataclass
class Page:
    """What an engine read on one picture, before layout.

    `boxes` are on the page as read: the picture enlarged `scale` times, then turned back
    upright from `orientation` (degrees counter-clockwise, 0/90/180/270). `size` is the
    picture's own (width, height)."""

    boxes: list[TextBox]
    size: tuple[int, int]
    orientation: int = 0
    scale: float = 1.0
    orientation_evidence: dict = field(default_factory=dict)

    def source_box(self, quads) -> list[int]:
        """`[x0, y0, x1, y1]` in the picture's own pixels around quads on the page as read."""
        import numpy as np

        from visionloop.models.ocr_orientation import unturn_points

        points = np.array([pt for quad in quads for pt in quad], dtype=np.float32).reshape(-1, 2)
        if self.orientation:
            width, height = (round(v * self.scale) for v in self.size)
            points = unturn_points(points, self.orientation, width, height)
        points = points / self.scale
        x0, y0 = points.min(axis=0)
        x1, y1 = points.max(axis=0)
        w, h = self.size
        return [max(int(x0), 0), max(int(y0), 0), min(int(np.ceil(x1)), w), min(int(np.ceil(y1)), h)]


@dataclass
class OcrReading:
    """What one engine read in one image: `blocks` of `lines` in reading order, their joined
    `text`, the raw `boxes` in the engine's own order (kept for benchmarks and debugging),
    and what was left out (`dropped`), each with its reason."""

    engine: str
    lines: list[Line]
    boxes: list[TextBox] = field(default_factory=list, repr=False)
    seconds: float = 0.0
    blocks: list[Block] = field(default_factory=list, repr=False)
    dropped: list[dict] = field(default_factory=list)
    orientation: int = 0
    scale: float = 1.0
    layout: str = "auto"

    @property
    def text(self) -> str:
        return lines_text(self.lines)


def assemble(engine: str, page: Page, layout: str = "auto", min_confidence: float = 0.0,
             separator: str = "\t", seconds: float = 0.0) -> OcrReading:
    """A `Page` -> an `OcrReading` (see the module's docstring)."""
    kept, dropped = [], []
    for box in sorted(page.boxes, key=lambda b: (min(y for _, y in b.quad), min(x for x, _ in b.quad))):
        if not box.text.strip():
            reason = "no text recognised"
        elif box.confidence < min_confidence:
            reason = f"confidence {box.confidence:.2f} below --min-confidence {min_confidence:g}"
        else:
            kept.append(box)
            continue
        dropped.append({"text": box.text.strip(), "box": page.source_box([box.quad]),
                        "confidence": round(box.confidence, 4), "reason": reason})
    started = time.perf_counter()
    blocks = arrange(kept, layout, separator)
    for block in blocks:
        for line in block.lines:
            line.box = page.source_box([piece.quad for piece in line.pieces])
    lines = [line for block in blocks for line in block.lines]
    seconds += time.perf_counter() - started
    return OcrReading(engine, lines, page.boxes, seconds, blocks, dropped, page.orientation, page.scale, layout)


class Reader:
    """What every engine shares: `read` = the engine's own `page` + filtering and layout."""

    name = "engine"

    def page(self, image, lang: str = "en") -> Page:
        raise NotImplementedError

    def read(self, image, lang: str = "en", layout: str = "auto", min_confidence: float = 0.0,
             separator: str = "\t") -> OcrReading:
        """The page read in reading order (see `assemble`)."""
        started = time.perf_counter()
        page = self.page(image, lang)
        return assemble(self.name, page, layout, min_confidence, separator, time.perf_counter() - started)
