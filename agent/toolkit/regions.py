"""Regions from words: what `edit --where` and `segment` share.

The segmenter (CLIPSeg, `ModelCache.segmenter`) gives, for each phrase, the probability of
each pixel of the picture belonging to it. A pixel is in the region when that probability
reaches `threshold` for any phrase (several `--where` are a union). The words' region is
grown by `grow` pixels and feathered by a Gaussian blur of radius `feather`, so that a repaint
blends into what is kept; then `within` (a mask or box the user gave) keeps only what lies
inside it (an intersection, after growing and feathering: the mask or box is a hard limit).
A region that covers nothing is refused in one line; one covering almost the whole picture
too (`refuse_full`, for `edit`: never a silent full repaint), or else returned with a note.
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
        # the range is checked by `check_region_settings` (one rule, one wording: 0 and 1 excluded)
        Input("threshold", "float", threshold, "how sure the segmenter must be that a pixel is the thing "
                                               "(between 0 and 1, not 0 or 1 themselves; lower finds more)"),
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
    notes: list


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
                within=None, refuse_full: bool = True) -> Region:
    """The region of `picture` (named `name` in messages) that `words` describe, at its size."""
    import numpy as np
    from PIL import Image, ImageFilter

    segmenter = ctx.models.segmenter()
    notes: list[str] = []
    used, cut = segmenter.fit(words)
    for phrase, dropped in zip(words, cut):
        if dropped:
            notes.append(f"where: '{phrase[:40]}...' was cut by {dropped} words to the "
                         f"{segmenter.max_tokens} tokens the segmenter reads")
    probs = segmenter.probabilities(picture, used)
    hits = probs >= float(threshold)
    found = hits.any(axis=0)
    shares = [round(float(h.mean()), 4) for h in hits]
    inside = np.asarray(within) >= 128 if within is not None else None
    if inside is not None:
        found_inside = found & inside
    else:
        found_inside = found
    share = float(found_inside.mean())
    if not found_inside.any():
        where = " inside the given mask/box" if within is not None else ""
        raise InputError(f"no {_named(words)} found in {name}{where}: try other words or a lower --threshold")
    if share > MAX_SHARE:
        if refuse_full:
            raise InputError(f"{_named(words)} covers {share:.0%} of {name}, almost the whole picture: try other "
                             "words or a higher --threshold")
        notes.append(f"{_named(words)} covers {share:.0%} of the picture, almost all of it "
                     "(a higher --threshold finds less)")
    # grow and feather the words' own region, then clip both by the mask or box: nothing outside it
    hard = Image.fromarray(found.astype(np.uint8) * 255, mode="L")
    for _ in range(int(grow)):  # a 3x3 maximum grows the region by one pixel each time
        hard = hard.filter(ImageFilter.MaxFilter(3))
    soft = hard.filter(ImageFilter.GaussianBlur(int(feather))) if feather else hard.copy()
    if feather:  # the blur must not eat into the region itself: only soften outwards
        soft = Image.fromarray(np.maximum(np.asarray(soft), np.asarray(hard)), mode="L")
    if inside is not None:
        hard = Image.fromarray(np.where(inside, np.asarray(hard), 0).astype(np.uint8), mode="L")
        soft = Image.fromarray(np.where(inside, np.asarray(soft), 0).astype(np.uint8), mode="L")
    record = {"where": list(words), "threshold": float(threshold), "grow": int(grow), "feather": int(feather),
              "covered": round(share, 4), "covered_grown": round(float((np.asarray(hard) >= 128).mean()), 4),
              "covered_by_words": dict(zip(words, shares)), "segmenter": segmenter.model_id,
              "segmenter_source": segmenter.source}
    return Region(hard, soft, record, notes)
