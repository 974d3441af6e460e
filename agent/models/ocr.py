"""OCR backends for `read-text`: RapidOCR (embedded, the default) and Tesseract (when installed).

Each engine's `page(image, lang)` finds and reads every text box on a page (a `Page`);
`read(image, lang, ...)` then puts them in reading order (`visionloop.models.ocr_reading`,
`visionloop.models.ocr_layout`). The `llava` engine is not here: it is the shared LLaVA
backend, asked through `visionloop.toolkit.vision.ask_llava`.

- RapidOCR (`rapidocr-onnxruntime`, `visionloop.models.ocr_rapidocr`) carries the PP-OCRv4
  detection and recognition models in its wheel, so it works offline with nothing to fetch. It
  is run step by step: small print enlarged, the page's orientation decided once and turned
  back, every detected line kept with its confidence, spaces decoded that the model ranked
  below "no character" (which fixes glued words such as "totaldue").
- Tesseract runs the `tesseract` binary on the image (PNG on stdin, TSV words on stdout), so no
  Python wrapper is needed; with its `osd` data installed it also turns a sideways or
  upside-down page back first.

The heavy parts (numpy, OpenCV, ONNX Runtime) are imported when an engine loads, so importing
this module stays light.
"""

from __future__ import annotations

import io
import logging
import re
import shutil
import subprocess

from visionloop.errors import InputError, ModelError
from visionloop.models.ocr_reading import Reader
from visionloop.models.reading_order import TextBox

log = logging.getLogger(__name__)

ENGINES = ("auto", "rapidocr", "tesseract", "llava")
#: --layout: auto (paragraphs, columns and tables as found), or forced (see ocr_layout)
LAYOUTS = ("auto", "lines", "blocks", "table")
#: --table: what separates a table row's cells in the text
TABLE_SEPARATORS = {"tabs": "\t", "pipes": " | "}

TESSERACT_MISSING = ("tesseract is not installed: install the tesseract-ocr package "
                     "(Debian/Ubuntu: apt-get install tesseract-ocr; macOS: brew install tesseract) "
                     "or use --engine rapidocr")

# ISO 639-1 codes users type -> Tesseract's traineddata names (anything else is passed through).
_TESSERACT_LANGS = {"en": "eng", "de": "deu", "fr": "fra", "es": "spa", "it": "ita", "pt": "por", "nl": "nld",
                    "pl": "pol", "ru": "rus", "ja": "jpn", "ko": "kor", "zh": "chi_sim", "ch": "chi_sim",
                    "ar": "ara", "tr": "tur", "sv": "swe", "da": "dan", "fi": "fin", "cs": "ces", "uk": "ukr"}


def __getattr__(name):  # the RapidOCR engine lives in its own module, imported when first asked for
    if name in ("RapidOcrEngine", "SpaceAwareDecode", "_SpaceAwareDecode", "SPACE_THRESHOLD"):
        from visionloop.models import ocr_rapidocr

        return getattr(ocr_rapidocr, name.lstrip("_"))
    if name in ("OcrReading", "Page"):
        from visionloop.models import ocr_reading

        return getattr(ocr_reading, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def tesseract_path() -> str | None:
    return shutil.which("tesseract")


def rapidocr_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("rapidocr_onnxruntime") is not None


def resolve_engine(engine: str) -> str:
    """`auto` -> the engine that will actually run; a named engine is checked to be usable.

    `auto` prefers the embedded RapidOCR (more accurate on the benchmark, and no install), then
    Tesseract if only that is there.
    """
    if engine not in ENGINES:
        raise InputError(f"engine: expected one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "auto":
        if rapidocr_available():
            return "rapidocr"
        if tesseract_path():
            return "tesseract"
        raise ModelError("no OCR engine is installed: pip install rapidocr-onnxruntime "
                         "(or install the tesseract-ocr package)")
    if engine == "rapidocr" and not rapidocr_available():
        raise ModelError("rapidocr is not installed: pip install rapidocr-onnxruntime")
    if engine == "tesseract" and not tesseract_path():
        raise ModelError(TESSERACT_MISSING)
    return engine


def load_engine(engine: str):
    """A ready engine object (`rapidocr` or `tesseract`); use `ModelCache.ocr` to share it."""
    if engine == "rapidocr":
        from visionloop.models.ocr_rapidocr import RapidOcrEngine

        return RapidOcrEngine()
    if engine == "tesseract":
        return TesseractEngine()
    raise InputError(f"engine: {engine!r} is not an OCR backend")


# --- Tesseract -------------------------------------------------------------------------------

#: one language as users and Tesseract name them: en, deu, chi_sim, script/Latin
_LANG_CODE = re.compile(r"[A-Za-z][A-Za-z0-9_]*(/[A-Za-z][A-Za-z0-9_]*)?")


def check_lang(lang: str, key: str = "lang") -> None:
    """`lang` must be language codes joined by '+'; `key` names where it came from."""
    if not all(_LANG_CODE.fullmatch(part.strip()) for part in lang.split("+")):
        raise InputError(f"{key}: expected language codes joined by '+' (e.g. en, de, en+de, chi_sim), got {lang!r}")


def tesseract_lang(lang: str) -> str:
    """`en` -> `eng`; `en+de` -> `eng+deu`; Tesseract's own names pass through."""
    return "+".join(_TESSERACT_LANGS.get(part.strip().lower(), part.strip()) for part in lang.split("+"))


def parse_tsv(tsv: str) -> list[TextBox]:
    """Tesseract's TSV output -> one `TextBox` per run of words on one of its lines, confidence 0..1.

    Words are grouped by Tesseract's own (block, paragraph, line) numbers: its word boxes are
    axis-aligned, so on a tilted line they step up or down and could not be regrouped by height.
    A line is split where two words are further apart than 1.5 line heights: Tesseract runs
    closely set columns into one line, and the reading order needs the pieces to see them.
    """
    lines: dict[tuple, list[tuple[str, int, int, int, int, float]]] = {}
    for row in tsv.splitlines()[1:]:
        cols = row.split("\t")
        if len(cols) < 12 or cols[0] != "5" or not cols[11].strip():
            continue
        left, top, width, height = (int(c) for c in cols[6:10])
        word = (cols[11].strip(), left, top, left + width, top + height, max(float(cols[10]), 0.0) / 100)
        lines.setdefault(tuple(cols[1:5]), []).append(word)
    boxes = []
    for words in lines.values():
        words.sort(key=lambda w: w[1])
        tall = max(w[4] - w[2] for w in words)
        runs = [[words[0]]]
        for word in words[1:]:
            if word[1] - runs[-1][-1][3] > 1.5 * tall:
                runs.append([])
            runs[-1].append(word)
        boxes.extend(_tesseract_box(run) for run in runs)
    return boxes


def _tesseract_box(words) -> TextBox:
    x0, y0 = min(w[1] for w in words), min(w[2] for w in words)
    x1, y1 = max(w[3] for w in words), max(w[4] for w in words)
    weights = [len(w[0]) for w in words]
    return TextBox(text=" ".join(w[0] for w in words), quad=[(x0, y0), (x1, y0), (x1, y1), (x0, y1)],
                   confidence=sum(w[5] * n for w, n in zip(words, weights)) / sum(weights))


class TesseractEngine(Reader):
    """The installed `tesseract` binary; `page(image, lang)` gives its lines as boxes."""

    name = "tesseract"

    def lang_note(self, lang: str) -> str | None:  # Tesseract reads with `lang` (or fails saying so)
        return None

    def __init__(self, binary: str | None = None, timeout: float = 120):
        self.binary = binary or tesseract_path()
        if not self.binary:
            raise ModelError(TESSERACT_MISSING)
        out = subprocess.run([self.binary, "--version"], capture_output=True, text=True, timeout=30)
        first = (out.stdout or out.stderr).splitlines()
        self.revision = first[0].split()[-1] if first else None
        self.model_id = "tesseract"
        self.source = self.binary
        self.timeout = timeout
        self.load_seconds = 0.0

    def boxes(self, image, lang: str = "en") -> list[TextBox]:
        png = io.BytesIO()
        image.convert("RGB").save(png, format="PNG")
        code = tesseract_lang(lang)
        # OMP_THREAD_LIMIT=1: Tesseract's OpenMP threads slow it down on small images.
        proc = subprocess.run([self.binary, "stdin", "stdout", "-l", code, "tsv"], input=png.getvalue(),
                              capture_output=True, timeout=self.timeout, env=_tesseract_env())
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace")
            if "Failed loading language" in err or "Error opening data file" in err:
                missing = [c for c in code.split("+") if c != "eng"] or [code]
                raise ModelError(f"lang: tesseract has no language data for {code!r}: install "
                                 f"{' '.join('tesseract-ocr-' + c.replace('_', '-') for c in missing)}")
            raise ModelError(f"tesseract failed: {err.strip().splitlines()[-1] if err.strip() else proc.returncode}")
        return parse_tsv(proc.stdout.decode("utf-8", errors="replace"))

    def page(self, image, lang: str = "en"):
        """Tesseract's lines on the page. A page it reads poorly (mean confidence below
        `OSD_BELOW`), or whose lines run up or down, is checked with Tesseract's orientation
        detection (`--psm 0`, needs its `osd` data) and, when turned, read again turned back;
        the turned reading is kept unless clearly less confident."""
        from visionloop.models.ocr_orientation import is_sideways
        from visionloop.models.ocr_reading import Page

        boxes = self.boxes(image, lang)
        page = Page(boxes, image.size)
        if not boxes or (_mean_confidence(boxes) >= OSD_BELOW and not is_sideways([b.quad for b in boxes])):
            return page
        turn = self.orientation(image)
        if not turn:
            return page
        turned = self.boxes(image.rotate(-turn, expand=True), lang)
        if _mean_confidence(turned) < _mean_confidence(boxes) - 0.05:
            return page
        return Page(turned, image.size, orientation=turn, orientation_evidence={"by": "tesseract osd"})

    def orientation(self, image) -> int:
        """Tesseract's orientation detection: how far the page is turned (counter-clockwise),
        0 when it cannot tell or has no `osd` data."""
        png = io.BytesIO()
        image.convert("RGB").save(png, format="PNG")
        proc = subprocess.run([self.binary, "stdin", "stdout", "--psm", "0"], input=png.getvalue(),
                              capture_output=True, timeout=self.timeout, env=_tesseract_env())
        found = re.search(r"Rotate: (\d+)", proc.stdout.decode(errors="replace"))
        return int(found.group(1)) % 360 if proc.returncode == 0 and found else 0


#: Tesseract's orientation detection (one more run, ~0.4 s) only for pages read with less mean
#: confidence than this, or whose lines run up or down
OSD_BELOW = 0.75


def _mean_confidence(boxes: list[TextBox]) -> float:
    weights = [len(b.text) for b in boxes]
    return sum(b.confidence * w for b, w in zip(boxes, weights)) / sum(weights) if sum(weights) else 0.0


def _tesseract_env() -> dict:
    import os

    return {**os.environ, "OMP_THREAD_LIMIT": "1"}
