"""Regions from words: what `edit --where` and `segment` share.

The segmenter (CLIPSeg, `ModelCache.segmenter`) gives, for each phrase, the probability of
each pixel of the picture belonging to it. A pixel is in the region when that probability
reaches `threshold` for any phrase (several `--where` are a union); `within` (a mask or box
the user gave) keeps only what lies inside it (an intersection). A region that covers nothing,
or almost the whole picture, is refused in one line: never a silent full repaint. The region
is then grown by `grow` pixels and feathered by a Gaussian blur of radius `feather`, so that
a repaint blends into what is kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from visionloop.errors import InputError
from visionloop.tools import Input

#: A region covering more than this share of the picture is refused (use no --where at all).
MAX_SHARE = 0.98
MAX_GROW = 256
MAX_FEATHER = 128


def region_inputs(threshold: float = 0.4, grow: int = 8, feather: int = 4, required: bool = False) -> list[Input]:
    """The inputs of a tool that finds regions by words."""
    return [
        Input("where", "text", None, "what to find, in words, e.g. 'the sky' (repeatable: the union)",
              required=required, multiple=True, max_chars=300),
        Input("threshold", "float", threshold, "how sure the segmenter must be that a pixel is the thing "
                                               "(between 0 and 1; lower finds more)", min=0.0, max=1.0),
        Input("grow", "int", grow, "grow the found region by this many pixels", min=0, max=MAX_GROW),
        Input("feather", "int", feather, "soften the region's edge over this many pixels", min=0, max=MAX_FEATHER),
    ]


@dataclass
class Region:
    """A region found by words: the hard mask (grown; white = in), the soft one (feathered),
    and what `data` records."""

    hard: object  # PIL "L"
    soft: object  # PIL "L"
    record: dict


def where_words(values) -> list[str]:
    """The `--where` phrases, cleaned; an empty one is refused."""
    if values is None:
        return []
    values = [values] if isinstance(values, str) else list(values)
    words = []
    for value in values:
        text = re.sub(r"\s+", " ", re.sub(r"[\x00-\x1f\x7f]+", " ", str(value))).strip()
        if not text:
            raise InputError("where: empty words; say what to find, e.g. --where 'the sky'")
        words.append(text)
    return words


def check_region_settings(threshold: float, grow: int, feather: int) -> None:
    if not 0.0 < float(threshold) < 1.0:
        raise InputError(f"threshold: must be between 0 and 1 (not 0 or 1 themselves), got {threshold:g}")
    if not 0 <= int(grow) <= MAX_GROW:
        raise InputError(f"grow: must be between 0 and {MAX_GROW} pixels, got {grow}")
    if not 0 <= int(feather) <= MAX_FEATHER:
        raise InputError(f"feather: must be between 0 and {MAX_FEATHER} pixels, got {feather}")


def _named(words: list[str]) -> str:
    """'sky' for ["the sky"]; 'sky' or 'sea' for two phrases."""
    bare = [re.sub(r"^(?:the|a|an)\s+", "", w, flags=re.IGNORECASE) or w for w in words]
    return " or ".join(f"'{w}'" for w in bare)


def find_region(ctx, picture, words: list[str], threshold: float, grow: int, feather: int, name: str,
                within=None) -> Region:
    """The region of `picture` (named `name` in messages) that `words` describe, at its size."""
    import numpy as np
    from PIL import Image, ImageFilter

    segmenter = ctx.models.segmenter()
    probs = segmenter.probabilities(picture, words)
    hits = probs >= float(threshold)
    found = hits.any(axis=0)
    shares = [round(float(h.mean()), 4) for h in hits]
    if within is not None:
        found &= np.asarray(within) >= 128
    share = float(found.mean())
    if not found.any():
        inside = " inside the given mask/box" if within is not None else ""
        raise InputError(f"no {_named(words)} found in {name}{inside}: try other words or a lower --threshold")
    if share > MAX_SHARE:
        raise InputError(f"{_named(words)} covers {share:.0%} of {name}, almost the whole picture: try other words "
                         "or a higher --threshold")
    hard = Image.fromarray(found.astype(np.uint8) * 255, mode="L")
    for _ in range(int(grow)):  # a 3x3 maximum grows the region by one pixel each time
        hard = hard.filter(ImageFilter.MaxFilter(3))
    if within is not None:
        hard = Image.fromarray(np.where(np.asarray(within) >= 128, np.asarray(hard), 0).astype(np.uint8), mode="L")
    soft = hard.filter(ImageFilter.GaussianBlur(int(feather))) if feather else hard.copy()
    if feather:  # the blur must not eat into the region itself: only soften outwards
        soft = Image.fromarray(np.maximum(np.asarray(soft), np.asarray(hard)), mode="L")
    record = {"where": list(words), "threshold": float(threshold), "grow": int(grow), "feather": int(feather),
              "covered": round(share, 4), "covered_grown": round(float((np.asarray(hard) >= 128).mean()), 4),
              "covered_by_words": dict(zip(words, shares)), "segmenter": segmenter.model_id,
              "segmenter_source": segmenter.source}
    return Region(hard, soft, record)
