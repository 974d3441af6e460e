"""OCR accuracy and speed: our `read-text` engine against raw RapidOCR and Tesseract.

Renders a varied set of text images with PIL (fonts, sizes, colours, slight rotation, blur,
text over a photo-like background, two-line and two-column layouts), so the truth is known,
then reports for every available engine:

- CER: character error rate, Levenshtein distance / truth length, after collapsing all
  whitespace to single spaces (so a newline and a space count the same, but a lost space or
  lines in the wrong order count as errors);
- s/image: median seconds per image, the engines called alternately on each image.

Engines:
- `ours`: the `read-text` tool (`--engine rapidocr`) called through the plugin registry and
  `run_tool`, exactly as the CLI, the chat and workflows call it: argument checks, the image
  read from a PNG file by the safe loader, the shared RapidOCR engine, reading order, the
  `ToolResult` record. What differs from `rapidocr-raw`: two engine settings (detection scales
  the longer side to at most 960 px instead of the shorter side up to 736 px; recognition keeps
  word spaces ranked below "no character", see `agent/models/ocr.py`), boxes put in reading
  order instead of detection order, and the tool's own costs (file decode, checks, record).
- `rapidocr-raw`: `RapidOCR()` with its defaults on the in-memory image (the same pixels: PNG
  is lossless), boxes joined in the order it returns them.
- `tesseract` (when the binary is installed): the `read-text` tool with `--engine tesseract`.
- `tesseract-raw`: the `tesseract` binary with `--psm 3` (its default page segmentation) on the
  same PNG file, its plain text output.

Sets: `main` and `held-out` are single lines and signs; `docs` and `docs-dev` are document-like
pages (`ocr_documents.py`: paragraphs, columns, receipts, tables, turned pages, small print,
JPEG, blur, skew), reported per category too. `docs-dev` was used while building the layout,
orientation and scaling rules; `docs` was not, and is the one to quote.

    .venv/bin/python benchmarks/ocr_accuracy.py [--set main|held-out|all|docs|docs-dev] [--repeat 3] [--save DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # ocr_documents, also when imported

COMPARED = ("ours = the read-text tool through the registry (PNG file decode, checks, RapidOCR step by step: "
            "small print enlarged, page orientation, every line kept, layout; record); rapidocr-raw = RapidOCR() "
            "defaults on the same pixels in memory, detection order; tesseract-raw = tesseract --psm 3 on the same "
            "PNG file")

FONT_DIRS = [Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu")]
FONT_FILES = ["DejaVuSans.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf", "DejaVuSans-Bold.ttf",
              "DejaVuSerif-Italic.ttf", "DejaVuSansCondensed.ttf"]

LINES = [
    "The quick brown fox jumps over the lazy dog",
    "Invoice 2024-117: total due 42.50 EUR",
    "Gate B42 closes at 07:15",
    "Meeting moved to Room 3, Friday",
    "Fresh bread baked every morning",
    "Call 555-0199 for a free quote",
    "Platform 9 trains to Bristol",
    "Keep this door closed at all times",
    "Sale ends Sunday: up to 60% off",
    "Welcome to the harbour museum",
    "Version 3.2 released on 14 May",
    "Please turn off your phone",
]

#: Lines and renderings not used to tune anything (`--set held-out`): long words, addresses,
#: numbers and punctuation, where wrongly inserted spaces would show.
HELD_OUT = [
    "Internationalization and localization", "www.example.com/downloads/latest",
    "Order #A7731-XK shipped 2025-03-09", "Temperature: -4.5 C, wind 12 km/h",
    "Supercalifragilistic expialidocious", "CONTACT: info@visionloop.dev",
    "Mississippi hippopotamus illuminating", "Total: 1,234,567.89 USD", "All work and no play makes Jack",
    "rm -rf build && make install", "Opening hours Mon-Fri 9am-5pm", "iiii llll mmmm wwww",
]


def font(index: int, size: int):
    name = FONT_FILES[index % len(FONT_FILES)]
    for folder in FONT_DIRS:
        if (folder / name).exists():
            return ImageFont.truetype(str(folder / name), size)
    return ImageFont.load_default(size=size)  # Pillow >= 10.1 scales its built-in font


def photo(width: int, height: int, seed: int) -> Image.Image:
    """A photo-like background: a sky-to-ground gradient, soft blobs and sensor noise."""
    rng = random.Random(seed)
    img = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    top, bottom = (rng.randint(60, 140), rng.randint(120, 200), rng.randint(180, 255)), (90, 110, 60)
    img = Image.merge("RGB", [img.getchannel(i).point(lambda v, a=top[i], b=bottom[i]: int(a + (b - a) * v / 255))
                              for i in range(3)])
    draw = ImageDraw.Draw(img)
    for _ in range(25):
        x, y, r = rng.randint(0, width), rng.randint(0, height), rng.randint(10, 80)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(rng.randint(30, 230) for _ in range(3)))
    img = img.filter(ImageFilter.GaussianBlur(6))
    noise = Image.effect_noise((width, height), 18).convert("RGB")
    return Image.blend(img, noise, 0.12)


def render(lines, size=28, font_index=0, fg="black", bg="white", angle=0.0, blur=0.0, background=None,
           columns=1, outline=False) -> tuple[Image.Image, str]:
    """Draw `lines` (split into `columns` side by side); returns the image and its truth text."""
    f = font(font_index, size)
    per_col = math.ceil(len(lines) / columns)
    cols = [lines[i * per_col:(i + 1) * per_col] for i in range(columns)]
    line_h = int(size * 1.6)
    col_w = max(int(f.getlength(line)) for line in lines) + 3 * size
    width, height = col_w * columns + 2 * size, line_h * per_col + 2 * size
    img = background(width, height) if background else Image.new("RGB", (width, height), bg)
    draw = ImageDraw.Draw(img)
    for c, col in enumerate(cols):
        for r, line in enumerate(col):
            xy = (size + c * col_w, size + r * line_h)
            if outline:
                draw.text(xy, line, font=f, fill=fg, stroke_width=max(1, size // 14), stroke_fill="black")
            else:
                draw.text(xy, line, font=f, fill=fg)
    if angle:
        img = img.rotate(angle, resample=Image.BICUBIC, expand=True,
                         fillcolor=bg if not background else (128, 128, 128))
    if blur:
        img = img.filter(ImageFilter.GaussianBlur(blur))
    truth = "\n".join(line for col in cols for line in col)
    return img, truth


def cases() -> list[tuple[str, Image.Image, str]]:
    """The benchmark set: (name, image, truth)."""
    L = LINES
    spec = [
        ("clean-sans", [L[0]], {}),
        ("clean-serif", [L[1]], {"font_index": 1}),
        ("mono-small", [L[2]], {"font_index": 2, "size": 16}),
        ("bold-large", [L[3]], {"font_index": 3, "size": 48}),
        ("italic", [L[4]], {"font_index": 4}),
        ("colour", [L[5]], {"fg": (200, 30, 30), "bg": (250, 240, 200)}),
        ("light-on-dark", [L[6]], {"fg": (240, 240, 240), "bg": (30, 40, 70), "font_index": 5}),
        ("rotated+3", [L[7]], {"angle": 3}),
        ("rotated-2-two-line", [L[8], L[9]], {"angle": -2, "font_index": 1}),
        ("blur", [L[10]], {"blur": 1.2}),
        ("blur-small", [L[11]], {"blur": 0.8, "size": 18}),
        ("photo", [L[2], L[3]], {"background": lambda w, h: photo(w, h, 1), "fg": "white", "outline": True,
                                  "size": 32, "font_index": 3}),
        ("photo-dark-text", [L[9]], {"background": lambda w, h: photo(w, h, 2), "fg": (10, 10, 10), "size": 30,
                                     "font_index": 3}),
        ("two-line", [L[0], L[1]], {}),
        ("two-column", [L[5], L[6], L[7], L[8]], {"columns": 2, "size": 22}),
        ("paragraph", L[:5], {"size": 22, "font_index": 1}),
    ]
    return [(name, *render(lines, **kw)) for name, lines, kw in spec]


def held_out_cases() -> list[tuple[str, Image.Image, str]]:
    """Each held-out line four ways: plain, small and blurred, tilted, white on a photo."""
    out = []
    for i, line in enumerate(HELD_OUT):
        variants = {"plain": {"font_index": i}, "small-blur": {"font_index": i + 2, "size": 18, "blur": 0.7},
                    "tilted": {"font_index": i + 1, "angle": 2, "size": 34},
                    "photo": {"background": lambda w, h, i=i: photo(w, h, 10 + i), "fg": "white", "outline": True,
                              "font_index": 3}}
        out.extend((f"h{i:02d}-{v}", *render([line], **kw)) for v, kw in variants.items())
    return out


def levenshtein(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def cer(predicted: str, truth: str) -> float:
    p, t = " ".join(predicted.split()), " ".join(truth.split())
    return levenshtein(p, t) / max(len(t), 1)


def engines(folder: Path, config_path: str | None, only: list[str] | None = None) -> dict:
    """name -> fn(name, image) -> text, for every engine available here. The tool side reads
    `folder/<name>.png`, written beforehand by `main`."""
    import numpy as np
    from rapidocr_onnxruntime import RapidOCR

    from visionloop.config import load_config
    from visionloop.context import Context
    from visionloop.models.ocr import tesseract_path
    from visionloop.plugins import load_registry
    from visionloop.tools import run_tool

    config = load_config(config_path, "tiny")
    registry = load_registry(config.plugins.paths)
    ctx = Context.create(config, folder / "out")
    tool = registry.tool("read-text")
    raw = RapidOCR()

    def tool_read(engine):
        def read(name, img):
            (result,) = run_tool(tool, {"image": [str(folder / f"{name}.png")], "engine": engine, "lang": "en"}, ctx)
            assert result.ok, result.error
            return result.text
        return read

    def raw_read(name, img):
        result, _ = raw(np.asarray(img.convert("RGB"))[:, :, ::-1])
        return " ".join(text for _, text, _ in (result or []))

    def tesseract_raw(name, img):
        proc = subprocess.run([tesseract_path(), str(folder / f"{name}.png"), "stdout", "--psm", "3", "-l", "eng"],
                              capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_THREAD_LIMIT": "1"})
        return proc.stdout

    out = {"ours": tool_read("rapidocr"), "rapidocr-raw": raw_read}
    if tesseract_path():
        out["tesseract"] = tool_read("tesseract")
        out["tesseract-raw"] = tesseract_raw
    return {name: fn for name, fn in out.items() if not only or name in only}


def document_cases(held_out: bool) -> list[tuple[str, str, Image.Image, str]]:
    from ocr_documents import document_set

    return document_set(held_out)


SETS = {
    "main": lambda: [(n, "line", i, t) for n, i, t in cases()],
    "held-out": lambda: [(n, "line", i, t) for n, i, t in held_out_cases()],
    "all": lambda: [(n, "line", i, t) for n, i, t in cases() + held_out_cases()],
    "docs": lambda: document_cases(True),
    "docs-dev": lambda: document_cases(False),
}


def cpu_note() -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cores} CPU core{'s' * (cores != 1)} available"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed calls per engine and image (median)")
    parser.add_argument("--save", help="write the rendered images and their truth here")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--set", choices=tuple(SETS), default="main",
                        help="main: the varied lines (default); held-out: lines never used for tuning; docs: "
                             "document-like pages never used for tuning; docs-dev: those used while building")
    parser.add_argument("--engines", default=None, help="comma-separated: ours,rapidocr-raw,tesseract,tesseract-raw")
    parser.add_argument("--verbose", "-v", action="store_true", help="print every wrong reading")
    parser.add_argument("--limit", type=int, default=None, help="only the first N images (a quick check)")
    parser.add_argument("--config", default=None, help="visionloop config (default: the usual lookup)")
    args = parser.parse_args(argv)

    data = SETS[args.set]()
    data = data[:args.limit] if args.limit else data
    folder = Path(args.save) if args.save else Path(tempfile.mkdtemp(prefix="vl-ocr-"))
    folder.mkdir(parents=True, exist_ok=True)
    for name, _, img, truth in data:  # the tool reads files, as a user's call does
        img.save(folder / f"{name}.png")
        (folder / f"{name}.txt").write_text(truth + "\n")
    readers = engines(folder, args.config, args.engines.split(",") if args.engines else None)
    for read in readers.values():  # warm-up: first calls build ONNX Runtime's kernels
        read(data[0][0], data[0][2])
    errors = {name: [] for name in readers}
    times = {name: [] for name in readers}
    for case, _, img, truth in data:
        per_engine = {name: [] for name in readers}
        text = {}
        for _ in range(args.repeat):  # alternate engines so machine load hits them alike
            for name, read in readers.items():
                started = time.perf_counter()
                text[name] = read(case, img)
                per_engine[name].append(time.perf_counter() - started)
        for name in readers:
            errors[name].append(cer(text[name], truth))
            times[name].append(statistics.median(per_engine[name]))
            if args.verbose and errors[name][-1] > 0:
                print(f"[{name}] {case}: CER {errors[name][-1]:.3f}\n  got:   {' '.join(text[name].split())!r}"
                      f"\n  truth: {' '.join(truth.split())!r}", file=sys.stderr)
    chars = [len(" ".join(t.split())) for _, _, _, t in data]

    def pooled(name, keep=lambda i: True):
        picked = [i for i in range(len(data)) if keep(i)]
        return sum(errors[name][i] * chars[i] for i in picked) / max(sum(chars[i] for i in picked), 1)

    rows = {}
    for name in readers:
        rows[name] = {"cer": pooled(name), "mean_case_cer": statistics.mean(errors[name]),
                      "perfect": sum(e == 0 for e in errors[name]), "seconds_per_image": statistics.median(times[name]),
                      "mean_seconds_per_image": statistics.mean(times[name])}
    base = rows["rapidocr-raw"]["seconds_per_image"] if "rapidocr-raw" in rows else None
    for row in rows.values():
        row["speed_vs_raw"] = row["seconds_per_image"] / base if base else None
    categories = list(dict.fromkeys(cat for _, cat, _, _ in data))
    per_category = {cat: {name: pooled(name, lambda i, c=cat: data[i][1] == c) for name in readers}
                    for cat in categories}
    if args.json:
        print(json.dumps({"set": args.set, "images": len(data), "compared": COMPARED, "cpu": cpu_note(),
                          "rows": rows, "categories": per_category,
                          "cases": {n: {e: errors[e][i] for e in readers} for i, (n, _, _, _) in enumerate(data)}},
                         indent=2))
        return 0
    print(f"set {args.set}: {len(data)} images, {sum(chars)} characters; CER pooled over all characters, "
          f"whitespace-normalised; {cpu_note()}")
    print(COMPARED)
    print(f"{'engine':<14}{'CER':>8}{'perfect':>10}{'s/image':>10}{'mean s':>9}{'vs raw':>9}")
    for name, r in rows.items():
        ratio = f"{r['speed_vs_raw']:>8.2f}x" if r["speed_vs_raw"] else f"{'-':>9}"
        print(f"{name:<14}{r['cer']:>8.2%}{r['perfect']:>7}/{len(data):<2}{r['seconds_per_image']:>10.3f}"
              f"{r['mean_seconds_per_image']:>9.3f}{ratio}")
    if len(categories) > 1:
        print("\nCER per category:")
        print(f"{'category':<20}{'images':>7}" + "".join(f"{n:>14}" for n in readers))
        for cat in categories:
            count = sum(1 for d in data if d[1] == cat)
            print(f"{cat:<20}{count:>7}" + "".join(f"{per_category[cat][e]:>14.2%}" for e in readers))
    print("\nper image CER:")
    print(f"{'image':<24}" + "".join(f"{n:>14}" for n in readers))
    for i, (name, _, _, _) in enumerate(data):
        print(f"{name:<24}" + "".join(f"{errors[e][i]:>14.3f}" for e in readers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
