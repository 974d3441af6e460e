"""The RapidOCR engine: PP-OCRv4 detection and recognition from the `rapidocr-onnxruntime` wheel
(offline, nothing to fetch), run step by step so a page is read whole:

1. Detect text boxes on the picture as it is (its longer side at most `MAX_SIDE`).
2. Small print: when the median box is thinner than `SMALL_TEXT` px, enlarge the picture so it
   reaches `TARGET_TEXT` px (at most `MAX_SCALE` times, and within `MAX_SIDE`) and detect again,
   then read the enlarged page. The scale is recorded. On the development documents a 12 px
   receipt read with 3.6% CER as it was and 0.5% enlarged twice.
3. Orientation: decide once for the page whether it is turned 0, 90, 180 or 270 degrees
   (`visionloop.models.ocr_orientation`) and turn it back. RapidOCR's own pipeline runs its
   direction classifier on every line and flips any it calls upside down: a wrong call turns a
   good line into garbage scored below 0.5, and its `text_score` filter then drops the line
   without a word. That was the "lost line"; here no line is flipped on its own and none is
   filtered: every detected box comes back with its confidence, and `read-text` decides what
   to leave out, saying so (`--min-confidence`, `data.dropped`).
4. Recognise every box, with spaces decoded even when ranked below "no character"
   (`SpaceAwareDecode`); a line read with low confidence or with
   too little room per character is read again wider (`RapidOcrEngine.recognise`); fullwidth
   punctuation in Latin text becomes ASCII, a space the decoder put inside a number ("12 .84")
   is taken out, and one it lost after a comma between words ("soil,spread") put back.
"""

from __future__ import annotations

import logging
import re
import time
from statistics import median

import numpy as np

from visionloop.models.ocr_orientation import clockwise, page_turn, quad_size, turn_points, upright
from visionloop.models.ocr_reading import Page, Reader
from visionloop.models.reading_order import TextBox

log = logging.getLogger(__name__)

#: A space ranked below "no character" is still decoded as a space when its probability at that
#: step is at least this. PP-OCR's recogniser often gives a word gap 0.05-0.4 for space and the
#: rest to blank, and greedy decoding then glues the words. Measured with
#: `benchmarks/ocr_accuracy.py --set held-out` (lines not used to pick it): CER 3.8% without the
#: fix, 1.7% at 0.15, 1.1% at 0.05, 1.0% at 0.03; 0.05 keeps a margin against spurious spaces
#: ("info @visionloop.dev"), which lower thresholds add on text the set does not cover.
SPACE_THRESHOLD = 0.05

#: detection sees the picture with its longer side at most this (RapidOCR's own limit)
MAX_SIDE = 2000
#: Enlarge the page when its median detected box is thinner than this (px) ... The detector's
#: boxes are about 1.1 times the type size for 20-30 px print, but never much thinner than
#: 16 px: print of 9 to 14 px all gives 16-18 px boxes, 16 px print 20.
SMALL_TEXT = 20.0
#: ... so that it becomes about this thick, ...
TARGET_TEXT = 36.0
#: ... but never more than this many times.
MAX_SCALE = 3.0
#: the recogniser reads every line scaled to this height
REC_HEIGHT = 48
#: the recogniser gives one output step per this many pixels of width
REC_STEP = 8
#: CTC needs room: a step per character, plus a blank between doubled letters ("rr", "pp").
#: A line read with fewer steps per character than this, or with less confidence than
#: RETRY_BELOW, is read again WIDEN times wider (at least TARGET_STEPS per character).
MIN_STEPS = 1.8
TARGET_STEPS = 2.4
RETRY_BELOW = 0.9
WIDEN = 1.25


class SpaceAwareDecode:
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


def small_text_scale(quads, width: int, height: int) -> float:
    """How much to enlarge a page whose median text box is thin (1.0: not at all)."""
    if not quads:
        return 1.0
    thickness = median(min(quad_size(q)) for q in quads)
    if thickness >= SMALL_TEXT:
        return 1.0
    scale = min(TARGET_TEXT / max(thickness, 1.0), MAX_SCALE, MAX_SIDE / max(width, height))
    return round(scale, 2) if scale >= 1.2 else 1.0


#: fullwidth forms (U+FF01-U+FF5E) and the ideographic space -> ASCII
_HALFWIDTH = {**{code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)}, 0x3000: 0x20}


def latin_punctuation(text: str) -> str:
    """The bundled model is Chinese first and writes a comma in Latin text as a fullwidth "，";
    in a line without CJK characters, fullwidth forms become their ASCII twins."""
    if any("\u3040" <= ch <= "\u9fff" or "\uac00" <= ch <= "\ud7af" for ch in text):
        return text
    return text.translate(_HALFWIDTH)


#: a space decoded inside a number: before its decimal point ("12 .84", "13 . 34"), or just after
#: it before two digits ("13. 34")
_NUMBER_SPACE = re.compile(r"(?<=\d) (?=[.,] ?\d)|(?<=\d\.) (?=\d\d\b)")
#: a space lost after a comma between words ("soil,spread"): the recogniser's commonest slip
#: on small or blurred print; a comma between lower-case letters is never right in prose
_COMMA_GLUED = re.compile(r"(?<=[a-z]),(?=[a-z])")


def tidy(text: str) -> str:
    """What the recogniser wrote, with its Chinese-model habits undone in Latin text."""
    text = _NUMBER_SPACE.sub("", latin_punctuation(text))
    return _COMMA_GLUED.sub(", ", _NUMBER_SPACE.sub("", text))  # twice: "13 . 34" -> "13. 34" -> "13.34"


def crop(image: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """The quad cut out of the image and warped to a rectangle (RapidOCR's way, cubic)."""
    import cv2

    quad = np.asarray(quad, dtype=np.float32)
    w = int(max(np.linalg.norm(quad[0] - quad[1]), np.linalg.norm(quad[2] - quad[3])))
    h = int(max(np.linalg.norm(quad[0] - quad[3]), np.linalg.norm(quad[1] - quad[2])))
    w, h = max(w, 1), max(h, 1)
    target = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(quad, target)
    return cv2.warpPerspective(image, matrix, (w, h), borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_CUBIC)


class RapidOcrEngine(Reader):
    """RapidOCR with the models from its wheel; `page(image)` finds and reads every text box.

    The bundled recogniser is PP-OCRv4's Chinese model (Chinese and English; no language
    switch), so `lang` is not used: `lang_note` says so when it names another language."""

    name = "rapidocr"
    #: the languages the bundled model reads, as Tesseract names them (see `tesseract_lang`)
    READS = ("eng", "chi_sim", "chi_tra")

    widen = WIDEN
    min_steps = MIN_STEPS
    retry_below = RETRY_BELOW
    target_steps = TARGET_STEPS

    def __init__(self, space_threshold: float = SPACE_THRESHOLD):
        import importlib.metadata

        from rapidocr_onnxruntime import RapidOCR

        started = time.perf_counter()
        self.ocr = RapidOCR(det_limit_type="max", det_limit_side_len=MAX_SIDE)
        recogniser = getattr(self.ocr, "text_rec", None)
        if hasattr(getattr(recogniser, "postprocess_op", None), "dict"):
            recogniser.postprocess_op = SpaceAwareDecode(recogniser.postprocess_op, space_threshold)
        else:  # another RapidOCR layout: still works, only glued words stay glued
            log.warning("rapidocr: unknown recogniser layout, decoding spaces the default way")
        self.revision = importlib.metadata.version("rapidocr-onnxruntime")
        self.model_id = "rapidocr"
        self.source = f"rapidocr-onnxruntime {self.revision} (PP-OCRv4, bundled)"
        self.load_seconds = time.perf_counter() - started

    def lang_note(self, lang: str) -> str | None:
        """A note for the result when `lang` asks for a language the bundled model cannot read."""
        from visionloop.models.ocr import tesseract_lang

        other = [part.strip() for part in lang.split("+") if tesseract_lang(part) not in self.READS]
        if not other:
            return None
        return (f"lang {'+'.join(other)} is not used by the rapidocr engine: its bundled model reads Chinese "
                "and English only, so other letters may be misread (--engine tesseract uses --lang)")

    # --- the steps ---------------------------------------------------------------------------

    def detect(self, image: np.ndarray) -> list[np.ndarray]:
        """Text boxes (quads, clockwise from top-left) in `image`'s pixels."""
        import cv2

        h, w = image.shape[:2]
        ratio = min(1.0, MAX_SIDE / max(h, w))
        small = cv2.resize(image, (max(int(w * ratio), 1), max(int(h * ratio), 1)),
                           interpolation=cv2.INTER_AREA) if ratio < 1 else image
        # A single line (very wide, or very low) is padded to a taller strip, as RapidOCR does:
        # the detector finds nothing in a strip only as high as the text.
        sh, sw = small.shape[:2]
        pad = max(int(sw / 8), 30) - sh // 2 if sh <= 30 or sw / sh > 8 else 0
        if pad > 0:
            small = cv2.copyMakeBorder(small, pad, pad, 0, 0, cv2.BORDER_REPLICATE)
        boxes, _ = self.ocr.text_det(small)
        if boxes is None or len(boxes) == 0:
            return []
        boxes = np.asarray(boxes, dtype=np.float32)
        boxes[:, :, 1] -= max(pad, 0)
        boxes /= ratio
        boxes[:, :, 0] = boxes[:, :, 0].clip(0, w)
        boxes[:, :, 1] = boxes[:, :, 1].clip(0, h)
        return [clockwise(b) for b in boxes if min(quad_size(b)) > 2]

    def classify(self, crops: list[np.ndarray]) -> list[tuple[str, float]]:
        if not crops:
            return []
        _, results, _ = self.ocr.text_cls(crops)
        return [(str(label), float(score)) for label, score in results]

    def recognise(self, crops: list[np.ndarray]) -> list[tuple[str, float]]:
        """(text, confidence) per crop. A line read with less confidence than `retry_below`,
        or with fewer than `min_steps` recogniser steps per character (densely set print:
        CTC then has no room for the blank between doubled letters, and "arrived" comes back
        "arived" or worse), is read again widened `widen` times (or to `target_steps` per
        character), and the more confident reading kept."""
        if not crops:
            return []
        widths = [c.shape[1] * REC_HEIGHT / max(c.shape[0], 1) for c in crops]
        results = self._rec(crops, widths)
        again = [i for i, (text, conf) in enumerate(results)
                 if conf < self.retry_below or widths[i] < self.min_steps * REC_STEP * len(text)]
        if again:
            retried = self._rec([crops[i] for i in again],
                                [max(widths[i] * self.widen, self.target_steps * REC_STEP * len(results[i][0]))
                                 for i in again])
            for i, result in zip(again, retried):
                if result[1] > results[i][1]:
                    results[i] = result
        return results

    def _rec(self, crops: list[np.ndarray], widths: list[float]) -> list[tuple[str, float]]:
        """The recogniser on each crop resized to `REC_HEIGHT` x its width in `widths`."""
        import cv2

        crops = [cv2.resize(c, (max(round(w), 8), REC_HEIGHT),
                            interpolation=cv2.INTER_AREA if c.shape[0] > REC_HEIGHT else cv2.INTER_LINEAR)
                 for c, w in zip(crops, widths)]
        results, _ = self.ocr.text_rec(crops)
        return [(str(r[0]), float(r[1])) for r in results]

    def page(self, image, lang: str = "en"):
        """Every text box on the page, read: a `Page` (boxes on the upright, scaled page)."""
        rgb = np.asarray(image.convert("RGB"))
        page = np.ascontiguousarray(rgb[:, :, ::-1])  # RapidOCR takes OpenCV's BGR
        height, width = page.shape[:2]
        quads = self.detect(page)
        scale = small_text_scale(quads, width, height)
        if scale > 1:
            import cv2

            page = cv2.resize(page, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_CUBIC)
            quads = self.detect(page)
        turn, evidence = page_turn(quads, lambda q: crop(page, q), self.classify, self.recognise)
        if turn == 180:  # the same boxes, turned
            h, w = page.shape[:2]
            quads = [clockwise(turn_points(q, turn, w, h)) for q in quads]
            page = upright(page, turn)
        elif turn:  # detect again: on its side the detector joins lines across a column gap
            page = upright(page, turn)
            quads = self.detect(page)
        results = self.recognise([crop(page, q) for q in quads])
        boxes = [TextBox(text=tidy(text), quad=[(float(x), float(y)) for x, y in q], confidence=conf)
                 for q, (text, conf) in zip(quads, results)]
        return Page(boxes=boxes, size=(width, height), orientation=turn, scale=scale, orientation_evidence=evidence)
