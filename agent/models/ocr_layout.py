"""Layout: read a page as a person does. Running text line by line, columns one after the other,
tables and receipts row by row.

A recursive XY-cut splits the page (`visionloop.models.reading_order` holds the geometry): a
wide vertical gap with at least two rows on each side either separates text columns or the
cells of a table. The two look alike from afar (both are boxes on shared baselines with a
gutter between them) and differ in what the boxes hold:

- text columns: every side holds running text, lines of several words;
- a table: some column holds numbers (prices, quantities, times), or is right-aligned while
  its left edges wander (a receipt's prices), or its cells end in a colon (a form's labels), or
  there are three or more columns of short cells.

Two columns of short words with none of these marks stay columns (a sign's two lists). A table
is read row by row, its cells left to right, split where the gap is wider than a column gap and
joined by the separator (a tab, or ` | `). A lone row next to a table whose gap lines up with
the table's (a receipt's TOTAL below a rule) joins the table.

`layout` forces a reading: `lines` reads every row across the whole page (no columns),
`blocks` reads columns but never tables, `table` reads every row as table cells.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from statistics import median

from visionloop.models.reading_order import (Line, Placed, TextBox, column_cut, gaps, group_rows, join_row,
                                             place_boxes, skew_angle)

LAYOUTS = ("auto", "lines", "blocks", "table")
SEPARATORS = {"tabs": "\t", "pipes": " | "}

#: a column gap is wider than this many text heights (a word space is about a third of one)
COLUMN_GAP = 1.5
#: a number, price, quantity, date or time cell: mostly digits, maybe a currency or a unit
_NUMBER = re.compile(r"^[^\w]{0,2}[-+(]?[\d]+([.,:/'-]\d+)*[)%]?\s?[A-Za-z€$£]{0,3}$")


@dataclass
class Block:
    """Lines read together: `paragraph` (running text), `column` (one of several side by side)
    or `table` (rows read across)."""

    kind: str
    lines: list[Line]

    @property
    def box(self) -> list[int]:
        boxes = [line.box for line in self.lines]
        return [min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)]

    def to_json(self) -> dict:
        return {"kind": self.kind, "box": self.box, "lines": [line.to_json() for line in self.lines]}


def arrange(boxes: list[TextBox], layout: str = "auto", separator: str = "\t") -> list[Block]:
    """Boxes in any order -> blocks in reading order, each with its lines (empty boxes dropped)."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout: expected one of {', '.join(LAYOUTS)}, got {layout!r}")
    boxes = [b for b in boxes if b.text.strip()]
    if not boxes:
        return []
    placed = place_boxes(boxes, skew_angle(boxes))
    # A column gap must be clearly wider than a word space, so one line split into two boxes is
    # never mistaken for two columns.
    min_gap = COLUMN_GAP * median(p.height for p in placed)
    if layout == "lines":
        return [Block("paragraph", [join_row(row) for row in group_rows(placed)])]
    if layout == "table":
        return [_table(placed, min_gap, separator)]
    regions = _cut(placed, min_gap, layout == "auto", "paragraph")
    if layout == "auto":
        regions = _absorb_rows(regions, min_gap)
    regions = _merge_runs(regions, min_gap / COLUMN_GAP)
    blocks: list[Block] = []
    for kind, items in regions:
        if kind == "table":
            blocks.append(_table(items, min_gap, separator))
        else:
            blocks.append(Block(kind, [join_row(row, kind) for row in group_rows(items)]))
    return [block for block in blocks if block.lines]


def _cut(items: list[Placed], min_gap: float, tables: bool, kind: str) -> list[tuple[str, list[Placed]]]:
    """Recursive XY-cut: (kind, boxes) regions in reading order."""
    if len(items) <= 1:
        return [(kind, items)]
    cut = column_cut(items, min_gap)
    if cut is not None:
        if tables and is_table(items, min_gap):
            return [("table", items)]
        left = [p for p in items if p.x1 <= cut]
        right = [p for p in items if p.x0 >= cut]
        return _cut(left, min_gap, tables, "column") + _cut(right, min_gap, tables, "column")
    # Horizontal projection on the middle half of each box: engines pad boxes, and padded
    # boxes of tightly set lines touch, which would hide the gap between them.
    found = gaps([(p.cy - p.height / 4, p.cy + p.height / 4) for p in items])
    if not found:
        return [(kind, items)]
    start, end = max(found, key=lambda g: g[1] - g[0])
    middle = (start + end) / 2
    top = [p for p in items if p.cy < middle]
    bottom = [p for p in items if p.cy >= middle]
    return _cut(top, min_gap, tables, kind) + _cut(bottom, min_gap, tables, kind)


# --- tables ----------------------------------------------------------------------------------

def _cuts(items: list[Placed], min_gap: float) -> list[float]:
    """The x of every vertical gap at least `min_gap` wide in the projection of `items`."""
    return [(a + b) / 2 for a, b in gaps([(p.x0, p.x1) for p in items]) if b - a >= min_gap]


def _columns(items: list[Placed], cuts: list[float]) -> list[list[list[Placed]]]:
    """columns[c][r]: the boxes of row r that fall in column c (between two cuts)."""
    rows = group_rows(items)
    out = [[[] for _ in rows] for _ in range(len(cuts) + 1)]
    for r, row in enumerate(rows):
        for p in row:
            out[sum((p.x0 + p.x1) / 2 > cut for cut in cuts)][r].append(p)
    return out


def _text(cell: list[Placed]) -> str:
    return " ".join(" ".join(p.box.text.split()) for p in sorted(cell, key=lambda p: p.x0))


def is_number(text: str) -> bool:
    text = text.strip()
    digits = sum(ch.isdigit() for ch in text)
    return bool(_NUMBER.match(text)) or (digits > 0 and digits >= 0.6 * len(text.replace(" ", "")))


def _spread(values: list[float]) -> float:
    """How far values wander: the median distance from their median."""
    mid = median(values)
    return median(abs(v - mid) for v in values)


def is_table(items: list[Placed], min_gap: float) -> bool:
    """Do these boxes, with a column gap among them, form a table rather than text columns?"""
    cuts = _cuts(items, min_gap)
    if not cuts:
        return False
    columns = _columns(items, cuts)
    shared = sum(sum(bool(col[r]) for col in columns) >= 2 for r in range(len(columns[0])))
    if shared < 2:  # cells must share baselines, at least two rows across
        return False
    height = median(p.height for p in items)
    cells = [[_text(cell) for cell in col if cell] for col in columns]
    prose = [len(texts) >= 2 and median(len(t.split()) for t in texts) >= 4 for texts in cells]
    numeric = [len(texts) >= 2 and sum(map(is_number, texts)) >= 0.6 * len(texts) for texts in cells]
    labels = [len(texts) >= 2 and sum(t.endswith(":") for t in texts) >= 0.6 * len(texts) for texts in cells]
    right_aligned = []
    for col in columns:
        filled = [cell for cell in col if cell]
        lefts, rights = [min(p.x0 for p in c) for c in filled], [max(p.x1 for p in c) for c in filled]
        right_aligned.append(len(filled) >= 3 and _spread(rights) < 0.3 * height and _spread(lefts) > height)
    if any(numeric) or any(right_aligned) or any(labels):
        return True
    return len(columns) >= 3 and not any(prose)


def _table(items: list[Placed], min_gap: float, separator: str) -> Block:
    """A table block: every row read across, cells split at gaps wider than `min_gap`."""
    lines = []
    for row in group_rows(items):
        row = sorted(row, key=lambda p: p.x0)
        cells, reach = [[row[0]]], row[0].x1
        for p in row[1:]:
            if p.x0 - reach >= min_gap:
                cells.append([])
            cells[-1].append(p)
            reach = max(reach, p.x1)
        line = join_row(row, "table-row")
        line.cells = [text for text in (_text(cell) for cell in cells) if text]
        line.text = separator.join(line.cells)
        lines.append(line)
    return Block("table", lines)


def _absorb_rows(regions: list[tuple[str, list[Placed]]], min_gap: float) -> list[tuple[str, list[Placed]]]:
    """A one-row region next to a table joins it when its wide gap spans one of the table's
    column gaps and it sits within a few lines of the table."""
    out = list(regions)
    changed = True
    while changed:
        changed = False
        for i, (kind, items) in enumerate(out):
            if kind != "table":
                continue
            cuts = _cuts(items, min_gap)
            height = median(p.height for p in items)
            top, bottom = min(p.y0 for p in items), max(p.y1 for p in items)
            for j in (i - 1, i + 1):
                if not 0 <= j < len(out) or out[j][0] == "table" or len(group_rows(out[j][1])) != 1:
                    continue
                row = out[j][1]
                row_gaps = [g for g in gaps([(p.x0, p.x1) for p in row]) if g[1] - g[0] >= min_gap]
                near = min(abs(min(p.y0 for p in row) - bottom), abs(top - max(p.y1 for p in row))) < 3 * height
                if near and any(a <= cut <= b for a, b in row_gaps for cut in cuts):
                    merged = items + row
                    out[min(i, j)] = ("table", merged)
                    del out[max(i, j)]
                    changed = True
                    break
            if changed:
                break
    return out


#: a gap wider than the usual line gap by this many text heights is a paragraph break
BLOCK_GAP = 0.3


def _merge_runs(regions: list[tuple[str, list[Placed]]], height: float) -> list[tuple[str, list[Placed]]]:
    """The XY-cut splits running text at every line gap; consecutive pieces of one kind, one
    above the other, are one block again unless the gap between them is a paragraph break
    (wider than the page's usual line gap by `BLOCK_GAP` text heights)."""
    def gap(upper, lower):
        return min(p.y0 for p in lower) - max(p.y1 for p in upper)

    def overlap(a, b):
        return min(max(p.x1 for p in a), max(p.x1 for p in b)) - max(min(p.x0 for p in a), min(p.x0 for p in b))

    pairs = [gap(a[1], b[1]) for a, b in zip(regions, regions[1:]) if a[1] and b[1] and overlap(a[1], b[1]) > 0]
    usual = sorted(g for g in pairs if g > -height)[len(pairs) // 4] if pairs else 0.0
    out: list[tuple[str, list[Placed]]] = []
    for kind, items in regions:
        if out and kind == out[-1][0] and kind != "table" and items and out[-1][1]:
            prev = out[-1][1]
            if -height < gap(prev, items) < max(usual, 0.0) + BLOCK_GAP * height and overlap(prev, items) > 0:
                out[-1] = (kind, prev + items)
                continue
        out.append((kind, items))
    return out


def blocks_text(blocks: list[Block]) -> str:
    return "\n".join(line.text for block in blocks for line in block.lines)

