"""Page orientation: is the page upright, or turned by 90, 180 or 270 degrees?

A page photographed sideways or upside down reads as garbage unless it is turned back first.
RapidOCR's direction classifier looks at one line at a time and only knows 0 and 180 degrees;
per line it is wrong now and then (an upright line called upside down with 0.97), and acting
on such a call flips a good line into garbage. So the page's orientation is decided once, from
all its lines together:

1. Geometry: text lines are long and thin. When the detected boxes are mostly taller than
   wide, the page is on its side (90 or 270); otherwise upright or upside down (0 or 180).
2. Direction: the most elongated lines (up to `SAMPLES`) are cut out and set upright for the
   first candidate; the classifier's calls are summed, each weighted by its confidence. A
   clear majority decides (keeping a page upright takes less weight than turning it: most
   pictures are upright).
3. When the vote is close (few lines, or the classifier unsure), a few lines are recognised
   both ways and the turn whose reading is more confident wins.

Angles are counter-clockwise, as PIL's `Image.rotate` counts them: a page at 90 was turned a
quarter to the left, and is read after turning it a quarter to the right.
"""

from __future__ import annotations

import math

import numpy as np

#: lines the classifier looks at (the most elongated ones; each is about 1 ms)
SAMPLES = 8
#: the vote is clear when the winner has at least this many times the loser's weight...
CLEAR_RATIO = 3.0
#: ... and at least this much weight (about two confident lines) to turn the page, ...
CLEAR_WEIGHT = 1.8
#: ... or this much (one confident line) to leave it upright
UPRIGHT_WEIGHT = 0.9
#: lines recognised both ways when the vote is close
CHECK_SAMPLES = 3


def quad_size(quad) -> tuple[float, float]:
    """(width, height) of a quad clockwise from top-left: its top edge and its left edge."""
    (x0, y0), (x1, y1), _, (x3, y3) = quad[:4]
    return math.hypot(x1 - x0, y1 - y0), math.hypot(x3 - x0, y3 - y0)


def is_sideways(quads) -> bool:
    """Are the lines mostly running up or down the picture? (Weighted by length, so a few
    single digits, which are taller than wide, do not turn a page of text.)"""
    wide = tall = 0.0
    for quad in quads:
        w, h = quad_size(quad)
        if w >= 1.5 * h:
            wide += w
        elif h >= 1.5 * w:
            tall += h
    return tall > wide


def upright(crop: np.ndarray, turn: int) -> np.ndarray:
    """A crop from a page turned `turn` degrees counter-clockwise, turned back."""
    return np.ascontiguousarray(np.rot90(crop, k=(-turn // 90) % 4))


def _elongated(quads, sideways: bool, n: int) -> list:
    def ratio(quad):
        w, h = quad_size(quad)
        return (h / max(w, 1)) if sideways else (w / max(h, 1))
    ranked = sorted(quads, key=ratio, reverse=True)
    return [q for q in ranked[:n] if ratio(q) >= 2.0] or ranked[:1]


def _centre(crop: np.ndarray, longest: float = 8.0) -> np.ndarray:
    """The middle of a long line crop, at most `longest` times as long as it is thick (the
    recogniser's cost grows with length; a few words are enough to tell which way is up)."""
    h, w = crop.shape[:2]
    if w >= h and w > longest * h:
        start = int((w - longest * h) / 2)
        return crop[:, start:start + int(longest * h)]
    if h > w and h > longest * w:
        start = int((h - longest * w) / 2)
        return crop[start:start + int(longest * w)]
    return crop


def page_turn(quads, crop, classify, recognise) -> tuple[int, dict]:
    """The page's turn (0, 90, 180 or 270) and how it was decided.

    `crop(quad)` cuts a box out of the page as it is (a tall crop for a line running up or
    down); `classify(crops)` gives RapidOCR's ("0" | "180", confidence) per crop;
    `recognise(crops)` gives (text, confidence) per crop.
    """
    if not quads:
        return 0, {"by": "no text"}
    sideways = is_sideways(quads)
    first, second = (90, 270) if sideways else (0, 180)
    crops = [_centre(crop(q)) for q in _elongated(quads, sideways, SAMPLES)]
    votes = {first: 0.0, second: 0.0}
    for label, score in classify([upright(c, first) for c in crops]):
        votes[second if "180" in str(label) else first] += float(score)
    best, other = (first, second) if votes[first] >= votes[second] else (second, first)
    evidence = {"by": "line direction", "votes": {str(k): round(v, 2) for k, v in votes.items()}}
    # Most pictures are upright: one confident line is enough to keep a page as it is, while
    # turning it takes a clear majority of about two lines' weight.
    enough = UPRIGHT_WEIGHT if best == 0 else CLEAR_WEIGHT
    if votes[best] >= enough and votes[best] >= CLEAR_RATIO * votes[other]:
        return best, evidence
    checked = crops[:CHECK_SAMPLES]
    results = recognise([upright(c, t) for t in (first, second) for c in checked])
    scores = {t: sum(conf * max(len(text.strip()), 1) for text, conf in results[i * len(checked):(i + 1) * len(checked)])
              for i, t in enumerate((first, second))}
    best = first if scores[first] >= scores[second] else second
    evidence.update(by="recognition confidence", scores={str(k): round(v, 2) for k, v in scores.items()})
    return best, evidence


def turn_points(points: np.ndarray, turn: int, width: int, height: int) -> np.ndarray:
    """Points (N x 2, x and y) on a `width` x `height` page turned `turn` degrees
    counter-clockwise -> the same points on the page turned back upright."""
    x, y = points[..., 0], points[..., 1]
    if turn == 90:  # turned back a quarter clockwise
        out = np.stack([height - y, x], axis=-1)
    elif turn == 180:
        out = np.stack([width - x, height - y], axis=-1)
    elif turn == 270:  # turned back a quarter counter-clockwise
        out = np.stack([y, width - x], axis=-1)
    else:
        out = np.stack([x, y], axis=-1)
    return out.astype(np.float32)


def unturn_points(points: np.ndarray, turn: int, width: int, height: int) -> np.ndarray:
    """The inverse of `turn_points`: points on the upright page -> on the page as given
    (`width` x `height` are the given page's)."""
    return turn_points(points, (360 - turn) % 360, *((height, width) if turn in (90, 270) else (width, height)))


def clockwise(quad: np.ndarray) -> np.ndarray:
    """Four corners ordered clockwise from the top-left, as RapidOCR orders its boxes."""
    order = quad[np.argsort(quad[:, 0])]
    left, right = order[:2], order[2:]
    tl, bl = left[np.argsort(left[:, 1])]
    tr, br = right[np.argsort(right[:, 1])]
    return np.array([tl, tr, br, bl], dtype=np.float32)
