"""OCR backends for `read-text`: RapidOCR (embedded, the default) and Tesseract (when installed).

Both give `TextBox`es; `visionloop.models.reading_order` turns them into lines. The `llava` engine
is not here: it is the shared LLaVA backend, asked through `visionloop.toolkit.vision.ask_llava`.

- RapidOCR (`rapidocr-onnxruntime`) carries the PP-OCRv4 detection and recognition models in its
  wheel, so it works offline with nothing to fetch. Two settings differ from its defaults, both
  measured by `benchmarks/ocr_accuracy.py`: detection scales the image so its *longer* side is
  at most 960 px (the default scales the shorter side *up* to 736 px, which splits lines and is
  several times slower), and recognition decodes spaces that the model saw but ranked below "no
  character" (see `_SpaceAwareDecode`), which fixes glued words such as "totaldue".
- Tesseract runs the `tesseract` binary on the image (PNG on stdin, TSV words on stdout), so no
  Python wrapper is needed.
"""

from __future__ import annotations

import io
import logging
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field

from visionloop.errors import InputError, ModelError
from visionloop.models.reading_order import Line, TextBox, lines_text, order_lines

log = logging.getLogger(__name__)

ENGINES = ("auto", "rapidocr", "tesseract", "llava")

TESSERACT_MISSING = ("tesseract is not installed: install the tesseract-ocr package "
                     "(Debian/Ubuntu: apt-get install tesseract-ocr; macOS: brew install tesseract) "
                     "or use --engine rapidocr")

# ISO 639-1 codes users type -> Tesseract's traineddata names (anything else is passed through).
_TESSERACT_LANGS = {"en": "eng", "de": "deu", "fr": "fra", "es": "spa", "it": "ita", "pt": "por", "nl": "nld",
                    "pl": "pol", "ru": "rus", "ja": "jpn", "ko": "kor", "zh": "chi_sim", "ch": "chi_sim",
                    "ar": "ara", "tr": "tur", "sv": "swe", "da": "dan", "fi": "fin", "cs": "ces", "uk": "ukr"}


@dataclass
class OcrReading:
    """What one engine read in one image: `lines` in reading order, their joined `text`, and
    the raw `boxes` in the engine's own order (kept for benchmarks and debugging)."""

    engine: str
    lines: list[Line]
    boxes: list[TextBox] = field(default_factory=list, repr=False)
    seconds: float = 0.0

    @property
    def text(self) -> str:
        return lines_text(self.lines)


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
        return RapidOcrEngine()
    if engine == "tesseract":
        return TesseractEngine()
    raise InputError(f"engine: {engine!r} is not an OCR backend")


# --- RapidOCR --------------------------------------------------------------------------------

#: A space ranked below "no character" is still decoded as a space when its probability at that
#: step is at least this. PP-OCR's recogniser often gives a word gap 0.05-0.4 for space and the
#: rest to blank, and greedy decoding then glues the words. Measured with
#: `benchmarks/ocr_accuracy.py --set held-out` (lines not used to pick it): CER 3.8% without the
#: fix, 1.7% at 0.15, 1.1% at 0.05, 1.0% at 0.03; 0.05 keeps a margin against spurious spaces
#: ("info @visionloop.dev"), which lower thresholds add on text the set does not cover.
SPACE_THRESHOLD = 0.05


class _SpaceAwareDecode:
    """Wraps RapidOCR's CTC decoder: promotes likely spaces at blank steps, then decodes as usual."""

    def __init__(self, decoder, threshold: float = SPACE_THRESHOLD):
        self.decoder = decoder
        self.threshold = threshold
        self.space = decoder.dict.get(" ")

    def __call__(self, preds, return_word_box=False, **kwargs):
        if self.space is not None and self.threshold < 1:
            preds = preds.copy()
            blank_steps = preds.argmax(axis=2) == 0  # index 0 is CTC's "no character"
            promote = blank_steps & (preds[:, :, self.space] >= self.threshold)
            # Give the space the winning probability so argmax (and the confidence) see it.
            preds[:, :, self.space] = preds[:, :, self.space] + promote * preds.max(axis=2)
        return self.decoder(preds, return_word_box, **kwargs)

    def __getattr__(self, name):  # everything else (dict, character, ...) from the real decoder
        return getattr(self.decoder, name)


class RapidOcrEngine:
    """RapidOCR with the models from its wheel; `read(image)` returns boxes in detection order.

    The bundled recogniser is PP-OCRv4's Chinese model (Chinese and English; no language
    switch), so `lang` is not used: `lang_note` says so when it names another language."""

    name = "rapidocr"
    #: the languages the bundled model reads, as Tesseract names them (see `tesseract_lang`)
    READS = ("eng", "chi_sim", "chi_tra")

    def __init__(self, space_threshold: float = SPACE_THRESHOLD, det_limit_side_len: int = 960):
        import importlib.metadata

        from rapidocr_onnxruntime import RapidOCR

        started = time.perf_counter()
        self.ocr = RapidOCR(det_limit_type="max", det_limit_side_len=det_limit_side_len)
        recogniser = getattr(self.ocr, "text_rec", None)
        if hasattr(getattr(recogniser, "postprocess_op", None), "dict"):
            recogniser.postprocess_op = _SpaceAwareDecode(recogniser.postprocess_op, space_threshold)
        else:  # another RapidOCR layout: still works, only glued words stay glued
            log.warning("rapidocr: unknown recogniser layout, decoding spaces the default way")
        self.revision = importlib.metadata.version("rapidocr-onnxruntime")
        self.model_id = "rapidocr"
        self.source = f"rapidocr-onnxruntime {self.revision} (PP-OCRv4, bundled)"
        self.load_seconds = time.perf_counter() - started

    def lang_note(self, lang: str) -> str | None:
        """A note for the result when `lang` asks for a language the bundled model cannot read."""
        other = [part.strip() for part in lang.split("+") if tesseract_lang(part) not in self.READS]
        if not other:
            return None
        return (f"lang {'+'.join(other)} is not used by the rapidocr engine: its bundled model reads Chinese "
                "and English only, so other letters may be misread (--engine tesseract uses --lang)")

    def boxes(self, image, lang: str = "en") -> list[TextBox]:
        import numpy as np

        # RapidOCR takes arrays as OpenCV's BGR; PIL gives RGB.
        result, _ = self.ocr(np.asarray(image.convert("RGB"))[:, :, ::-1])
        return [TextBox(text=str(text), quad=[(float(x), float(y)) for x, y in quad], confidence=float(score))
                for quad, text, score in (result or [])]

    def read(self, image, lang: str = "en") -> OcrReading:
        started = time.perf_counter()
        boxes = self.boxes(image, lang)
        return OcrReading(self.name, order_lines(boxes), boxes, time.perf_counter() - started)


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


class TesseractEngine:
    """The installed `tesseract` binary; `read(image, lang)` returns its lines as boxes."""

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

    def read(self, image, lang: str = "en") -> OcrReading:
        started = time.perf_counter()
        boxes = self.boxes(image, lang)
        return OcrReading(self.name, order_lines(boxes), boxes, time.perf_counter() - started)


def _tesseract_env() -> dict:
    import os

    return {**os.environ, "OMP_THREAD_LIMIT": "1"}
