"""Document-like pictures for `ocr_accuracy.py --set docs|docs-dev`, rendered with PIL so the truth is known.

Two sets with the same categories, built from different texts, fonts, sizes and seeds:

- `docs-dev`: used while building the layout, orientation and scaling rules;
- `docs` (held out): never looked at while tuning; the figures reported come from it.

Categories: paragraph, two-column, receipt, table, turned (90/180/270), light-on-dark,
low-contrast, small-print (12 px), jpeg (quality 12), blur-noise, skewed (8 degrees on a
textured background). Truth reads as a person would: paragraphs line by line, columns one after
the other, receipts and tables row by row with cells separated by a tab.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT_DIRS = [Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/truetype/liberation"),
             Path("/usr/share/fonts/dejavu"), Path("/usr/share/fonts/liberation")]


def font(name: str, size: int):
    for folder in FONT_DIRS:
        if (folder / name).exists():
            return ImageFont.truetype(str(folder / name), size)
    return ImageFont.load_default(size=size)


@dataclass
class Style:
    """The fonts and sizes of one set."""

    body: str
    bold: str
    mono: str
    size: int


DEV_STYLE = Style("DejaVuSerif.ttf", "DejaVuSans-Bold.ttf", "DejaVuSansMono.ttf", 19)
HELD_STYLE = Style("LiberationSerif-Regular.ttf", "LiberationSans-Bold.ttf", "LiberationMono-Regular.ttf", 21)

DEV_TEXT = {
    "title": "Community Garden Newsletter",
    "paragraphs": [
        "The spring planting day brought forty volunteers to the north beds. Together they turned the soil, "
        "spread compost from the winter piles and sowed three long rows of beans, peas and early lettuce.",
        "Water remains our biggest worry. The old pump near the shed leaks at the joint, so please close the "
        "valve after use and report any puddles to Martin on the notice board by the gate.",
        "Next month we will build two raised beds for members who cannot kneel. Timber has been donated by a "
        "local builder, and we still need screws, gloves and a few strong pairs of hands.",
    ],
    "columns_title": "Repairing a Bicycle Chain",
    "columns": [
        "Shift to the smallest rear cog before you start. Clean the chain with a dry rag and look for stiff "
        "links, which show as a jump when you turn the pedals backwards slowly.",
        "Push the pin out with a chain tool until it almost leaves the outer plate. Remove the damaged link, "
        "fit the new one and press the pin back until it sits flush on both sides.",
        "Flex the joint sideways to free it, then add one drop of oil on every roller. Wipe off the excess so "
        "that dust does not stick to the chain on the next ride.",
        "Test the repair on a quiet street. If the chain skips under load, the cassette may be worn as well "
        "and should be measured before you buy a new chain.",
    ],
    "shop": ["CORNER BAKERY", "12 Mill Street, Leeds", "Date 03/04/2025  Time 08:41"],
    "items": ["Sourdough loaf", "Croissant", "Rye roll", "Cinnamon bun", "Flat white", "Orange juice",
              "Apple tart", "Seeded bagel", "Cheese scone", "Pot of tea"],
    "table_head": ["Route", "Destination", "Departs", "Platform"],
    "table_rows": [["R14", "Harbour Road", "09:05", "2"], ["R22", "Airport North", "09:12", "5"],
                   ["X7", "City Hospital", "09:20", "1"], ["R3", "Westfield Park", "09:31", "4"],
                   ["N9", "University", "09:44", "3"], ["X12", "Old Town Square", "09:58", "6"]],
}

HELD_TEXT = {
    "title": "Notes from the Lighthouse Keeper",
    "paragraphs": [
        "A grey swell rolled in from the west all morning, and by noon the fishing boats had turned back "
        "towards the harbour. I cleaned the lens twice and checked the spare lamps in the lower store.",
        "The supply launch arrived late with flour, paraffin and a crate of letters. Among them was a "
        "request from the museum for photographs of the old clockwork that once turned the light.",
        "At dusk the wind dropped and the sky cleared. I counted eleven ships on the horizon, wrote the "
        "weather in the log and climbed the hundred and twelve steps to light the lamp.",
    ],
    "columns_title": "The Library Reopens",
    "columns": [
        "After two years of building work the central library opens its doors again on Monday. The reading "
        "room has new windows, quiet desks and power sockets at every seat.",
        "Children will find their books on the ground floor, next to a small theatre where stories are read "
        "aloud every Saturday morning at ten.",
        "The archive moved to the basement, where the air is kept cool and dry. Visitors may ask to see "
        "maps, parish records and old newspapers at the front desk.",
        "Opening hours are longer than before: the doors stay open until eight on weekdays, and volunteers "
        "will offer guided tours during the first month.",
    ],
    "shop": ["GREEN MARKET", "Unit 4, Station Way", "Receipt 0847  14/11/2025"],
    "items": ["Bananas 1kg", "Whole milk", "Brown eggs", "Cheddar", "Basmati rice", "Tomatoes",
              "Olive oil", "Dark chocolate", "Green tea", "Porridge oats"],
    "table_head": ["Item", "Qty", "Unit price", "Amount"],
    "table_rows": [["Copy paper A4", "5", "4.20", "21.00"], ["Stapler", "1", "7.95", "7.95"],
                   ["Blue pens", "12", "0.65", "7.80"], ["Desk lamp", "2", "18.50", "37.00"],
                   ["Sticky notes", "6", "1.10", "6.60"], ["Paper clips", "3", "0.90", "2.70"]],
}


def wrap(text: str, f, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        trial = f"{line} {word}".strip()
        if f.getlength(trial) > width and line:
            lines.append(line)
            line = word
        else:
            line = trial
    return lines + ([line] if line else [])


class Canvas:
    """Draws text top-down on a white page and keeps the truth, line by line."""

    def __init__(self, width: int, height: int):
        self.img = Image.new("L", (width, height), 255)
        self.draw = ImageDraw.Draw(self.img)

    def text(self, xy, text, f):
        self.draw.text(xy, text, font=f, fill=0)


def paragraph_page(t: dict, s: Style, size: int | None = None, width: int = 760) -> tuple[Image.Image, str]:
    size = size or s.size
    body, head = font(s.body, size), font(s.bold, int(size * 1.4))
    margin, lead = int(size * 2.2), int(size * 1.5)
    blocks = [wrap(p, body, width - 2 * margin) for p in t["paragraphs"]]
    height = margin * 2 + int(size * 2.6) + sum(len(b) * lead + lead // 2 for b in blocks)
    c = Canvas(width, height)
    c.text((margin, margin), t["title"], head)
    y, truth = margin + int(size * 2.6), [t["title"]]
    for b in blocks:
        for line in b:
            c.text((margin, y), line, body)
            truth.append(line)
            y += lead
        y += lead // 2
    return c.img, "\n".join(truth)


def columns_page(t: dict, s: Style, size: int | None = None, width: int = 1000) -> tuple[Image.Image, str]:
    size = size or s.size
    body, head = font(s.body, size), font(s.bold, int(size * 1.5))
    margin, gutter, lead = int(size * 2), int(size * 2.2), int(size * 1.45)
    col_w = (width - 2 * margin - gutter) // 2
    cols = [[line for p in t["columns"][:2] for line in wrap(p, body, col_w) + [""]],
            [line for p in t["columns"][2:] for line in wrap(p, body, col_w) + [""]]]
    height = margin * 2 + int(size * 2.8) + max(len(col) for col in cols) * lead
    c = Canvas(width, height)
    c.text((margin, margin), t["columns_title"], head)
    truth = [t["columns_title"]]
    for i, col in enumerate(cols):
        y = margin + int(size * 2.8)
        for line in col:
            if line:
                c.text((margin + i * (col_w + gutter), y), line, body)
                truth.append(line)
            y += lead
    return c.img, "\n".join(truth)


def receipt_page(t: dict, s: Style, seed: int, size: int | None = None, n: int = 7) -> tuple[Image.Image, str]:
    rng = random.Random(seed)
    size = size or s.size
    f, bold = font(s.mono, size), font(s.bold, int(size * 1.2))
    width, margin, lead = int(size * 22), int(size * 1.5), int(size * 1.55)
    items = rng.sample(t["items"], n)
    prices = [rng.randint(90, 1450) / 100 for _ in items]
    rows: list[tuple[str, str]] = [(name, f"{p:.2f}") for name, p in zip(items, prices)]
    total = sum(prices)
    tax = round(total * 0.2 / 1.2, 2)
    height = margin * 2 + lead * (len(t["shop"]) + len(rows) + 6)
    c = Canvas(width, height)
    truth = []
    y = margin
    for i, line in enumerate(t["shop"]):
        fnt = bold if i == 0 else f
        c.text(((width - fnt.getlength(line)) / 2, y), line, fnt)
        truth.append(line)
        y += lead
    y += lead // 2
    c.draw.line((margin, y - lead // 4, width - margin, y - lead // 4), fill=0, width=1)
    for name, price in rows + [("VAT 20% incl.", f"{tax:.2f}")]:
        c.text((margin, y), name, f)
        c.text((width - margin - f.getlength(price), y), price, f)
        truth.append(f"{name}\t{price}")
        y += lead
    c.draw.line((margin, y + lead // 4, width - margin, y + lead // 4), fill=0, width=2)
    y += lead // 2
    total_s = f"{total:.2f}"
    c.text((margin, y), "TOTAL", bold)
    c.text((width - margin - bold.getlength(total_s), y), total_s, bold)
    truth.append(f"TOTAL\t{total_s}")
    y += int(lead * 1.8)
    thanks = "Thank you for shopping"
    c.text(((width - f.getlength(thanks)) / 2, y), thanks, f)
    truth.append(thanks)
    return c.img, "\n".join(truth)


def table_page(t: dict, s: Style, size: int | None = None) -> tuple[Image.Image, str]:
    size = size or s.size
    f, bold = font(s.body.replace("Serif", "Sans") if "Liberation" in s.body else "DejaVuSans.ttf", size), \
        font(s.bold, size)
    rows = [t["table_head"], *t["table_rows"]]
    widths = [max(int(bold.getlength(r[i])) for r in rows) + int(size * 2.2) for i in range(len(rows[0]))]
    numeric = [all(r[i].replace(".", "").replace(":", "").isdigit() for r in rows[1:]) for i in range(len(rows[0]))]
    margin, lead = int(size * 1.8), int(size * 1.9)
    width, height = margin * 2 + sum(widths), margin * 2 + lead * len(rows)
    c = Canvas(width, height)
    truth = []
    for r, row in enumerate(rows):
        y, x = margin + r * lead, margin
        for i, cell in enumerate(row):
            fnt = bold if r == 0 else f
            cx = x + widths[i] - int(size * 2.2) - fnt.getlength(cell) if numeric[i] else x
            c.text((cx, y), cell, fnt)
            x += widths[i]
        if r == 0:
            c.draw.line((margin, y + lead - size // 3, width - margin, y + lead - size // 3), fill=0, width=1)
        truth.append("\t".join(row))
    return c.img, "\n".join(truth)


# --- the ways a picture of a page goes wrong -------------------------------------------------

def to_rgb(img: Image.Image, fg=(0, 0, 0), bg=(255, 255, 255)) -> Image.Image:
    """A grey page (text 0, paper 255) in colours `fg` on `bg`."""
    return Image.merge("RGB", [img.point(lambda v, a=fg[i], b=bg[i]: int(a + (b - a) * v / 255)) for i in range(3)])


def jpeg(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def noisy(img: Image.Image, blur: float, sigma: float, seed: int) -> Image.Image:
    import numpy as np

    rng = np.random.default_rng(seed)
    arr = np.asarray(img.convert("RGB").filter(ImageFilter.GaussianBlur(blur)), dtype=np.float32)
    arr = arr + rng.normal(0, sigma, arr.shape[:2])[:, :, None]
    return Image.fromarray(arr.clip(0, 255).astype("uint8"))


def textured(width: int, height: int, seed: int) -> Image.Image:
    """A wooden-desk-like background: brown stripes and grain noise."""
    import numpy as np

    rng = np.random.default_rng(seed)
    y = np.arange(height)[:, None]
    x = np.arange(width)[None, :]
    grain = np.sin(y / 7.0 + 3 * np.sin(x / 90.0)) * 18 + rng.normal(0, 10, (height, width))
    base = np.stack([120 + grain, 85 + grain * 0.8, 55 + grain * 0.6], axis=2)
    return Image.fromarray(base.clip(0, 255).astype("uint8"))


def skewed(img: Image.Image, degrees: float, seed: int) -> Image.Image:
    page = img.convert("RGB").rotate(degrees, resample=Image.BICUBIC, expand=True, fillcolor=(0, 0, 0))
    mask = Image.new("L", img.size, 255).rotate(degrees, resample=Image.BICUBIC, expand=True, fillcolor=0)
    pad = 60
    bg = textured(page.width + 2 * pad, page.height + 2 * pad, seed)
    bg.paste(page, (pad, pad), mask)
    return bg


TURNS = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_270}


def document_set(held_out: bool) -> list[tuple[str, str, Image.Image, str]]:
    """(name, category, image, truth) for every picture of one set."""
    t, s = (HELD_TEXT, HELD_STYLE) if held_out else (DEV_TEXT, DEV_STYLE)
    seed = 1000 if held_out else 0
    para, para_truth = paragraph_page(t, s)
    cols, cols_truth = columns_page(t, s)
    rec, rec_truth = receipt_page(t, s, seed)
    rec2, rec2_truth = receipt_page(t, s, seed + 1, size=s.size - 3, n=9)
    tab, tab_truth = table_page(t, s)
    small, small_truth = paragraph_page(t, s, size=12, width=520)
    small_rec, small_rec_truth = receipt_page(t, s, seed + 2, size=12, n=6)
    out = [
        ("paragraph", "paragraph", to_rgb(para), para_truth),
        ("two-column", "two-column", to_rgb(cols), cols_truth),
        ("receipt", "receipt", to_rgb(rec), rec_truth),
        ("receipt-small", "receipt", to_rgb(rec2, bg=(250, 248, 240)), rec2_truth),
        ("table", "table", to_rgb(tab), tab_truth),
        ("turned-90", "turned", to_rgb(para).transpose(TURNS[90]), para_truth),
        ("turned-180", "turned", to_rgb(rec).transpose(TURNS[180]), rec_truth),
        ("turned-270", "turned", to_rgb(cols).transpose(TURNS[270]), cols_truth),
        ("light-on-dark", "light-on-dark", to_rgb(para, fg=(235, 235, 225), bg=(25, 35, 60)), para_truth),
        ("low-contrast", "low-contrast", to_rgb(cols, fg=(140, 140, 150), bg=(200, 200, 205)), cols_truth),
        ("small-print", "small-print", to_rgb(small), small_truth),
        ("small-receipt", "small-print", to_rgb(small_rec), small_rec_truth),
        ("jpeg-q12", "jpeg", jpeg(to_rgb(para), 12), para_truth),
        ("jpeg-q12-table", "jpeg", jpeg(to_rgb(tab), 12), tab_truth),
        ("blur-noise", "blur-noise", noisy(to_rgb(para), 1.1, 14, seed + 3), para_truth),
        ("blur-noise-receipt", "blur-noise", noisy(to_rgb(rec), 0.9, 12, seed + 4), rec_truth),
        ("skewed-8", "skewed", skewed(to_rgb(para), 8 if held_out else -8, seed + 5), para_truth),
        ("skewed-receipt", "skewed", skewed(to_rgb(rec), -6 if held_out else 6, seed + 6), rec_truth),
    ]
    if not held_out:  # more small print while building (the held-out set keeps the same categories as before)
        for size in (10, 11, 14):
            img, truth = paragraph_page(t, Style("DejaVuSans.ttf", s.bold, s.mono, size), size=size, width=size * 45)
            out.append((f"small-sans-{size}", "small-print", to_rgb(img), truth))
            out.append((f"small-blur-{size}", "small-print", jpeg(noisy(to_rgb(img), 0.6, 6, size), 50), truth))
        for face in ("DejaVuSans-ExtraLight.ttf", "DejaVuSerifCondensed.ttf"):  # thin strokes, long lines
            img, truth = paragraph_page(t, Style(face, s.bold, s.mono, 20), width=900)
            tag = face.split(".")[0].split("-")[-1].lower()
            out.append((f"blur-noise-{tag}", "blur-noise", noisy(to_rgb(img), 1.2, 16, 7), truth))
            out.append((f"jpeg-q10-{tag}", "jpeg", jpeg(to_rgb(img), 10), truth))
    prefix = "d" if held_out else "v"
    return [(f"{prefix}-{name}", cat, img, truth) for name, cat, img, truth in out]
