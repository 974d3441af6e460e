"""The text-prompted segmenter: CLIPSeg (`CIDAS/clipseg-rd64-refined` by default; the profile's
`segmenter:`) turns words into a probability map of where they are in a picture.

One `SegmenterBackend` per process, in the `ModelCache` like every model. It runs in float32
(a 150M-parameter model: half precision saves little and moves thresholds). `probabilities`
is exactly the raw transformers call (processor, model, sigmoid) followed by one bilinear
resize to the picture's own size; thresholds, growing and feathering are the tools' business
(`visionloop.toolkit.regions`).
"""

from __future__ import annotations

import time

from visionloop.errors import ModelError
from visionloop.models.loading import (
    hub_kwargs,
    load_guarded,
    quiet_loading,
    weights_kwargs,
)
from visionloop.paths import user_path


def segmenter_source(cache, model_id: str) -> str:
    """What to hand `from_pretrained` for the profile's `segmenter.model`: the tiny model's
    folder, a local folder holding a CLIPSeg `config.json`, or a hub id."""
    from visionloop.config import TINY

    if model_id == TINY:
        from visionloop.models.tiny import tiny_model_path

        return str(tiny_model_path("clipseg", cache.config.cache_path))
    check = f"(check {cache.where('segmenter.model')})"
    local = user_path(model_id)
    if local.exists():
        if not (local / "config.json").is_file():
            raise ModelError(f"{model_id}: no config.json in this folder, so it is not a segmenter model {check}")
        return str(local)
    if model_id.startswith(("/", ".", "~")):
        raise ModelError(f"{model_id}: model folder not found {check}")
    from visionloop.models.loading import check_hub_id

    check_hub_id(model_id, check)
    return model_id


class SegmenterBackend:
    """CLIPSeg: `probabilities(picture, words)` for each phrase, at the picture's size."""

    kind = "segmenter"

    def __init__(self, model_id: str, source: str, revision: str | None, device: str, offline: bool = False,
                 allow_pickle: bool = False):
        import torch
        from transformers import AutoProcessor, CLIPSegForImageSegmentation

        self.model_id = model_id
        self.source = source
        self.revision = revision
        self.device = device
        self.dtype = torch.float32
        started = time.perf_counter()
        kwargs = hub_kwargs(revision, offline, False)
        with quiet_loading():
            self.processor = load_guarded(source, lambda: AutoProcessor.from_pretrained(source, **kwargs))
            self.model = load_guarded(source, lambda: CLIPSegForImageSegmentation.from_pretrained(
                source, dtype=self.dtype, **weights_kwargs(allow_pickle), **kwargs))
        self.model.to(device).eval()
        self.load_seconds = time.perf_counter() - started

    def describe(self) -> dict:
        return {"model": self.model_id, "source": self.source, "revision": self.revision}

    @property
    def max_tokens(self) -> int:
        """How many tokens of a phrase the text model reads (77 for CLIPSeg), start and end included."""
        limit = self.model.config.text_config.max_position_embeddings
        return min(limit, getattr(self.processor.tokenizer, "model_max_length", limit) or limit)

    def fit(self, words: list[str]) -> tuple[list[str], list[int]]:
        """Each phrase cut at a word boundary to what the text model reads, and how many words
        each lost (a longer phrase is an error in the model: positions past its table)."""
        tokenizer, limit = self.processor.tokenizer, self.max_tokens
        used, dropped = [], []
        for phrase in words:
            parts = phrase.split()
            low, high = 1, len(parts)  # the most words that fit (at least one: cut by truncation then)
            while low < high:
                mid = (low + high + 1) // 2
                if len(tokenizer(" ".join(parts[:mid]), verbose=False).input_ids) <= limit:
                    low = mid
                else:
                    high = mid - 1
            kept = low
            used.append(" ".join(parts[:kept]))
            dropped.append(len(parts) - kept)
        return used, dropped

    def logits(self, picture, words: list[str]):
        """The raw CLIPSeg logits, one map per phrase, at the model's resolution (352x352 for
        CLIPSeg; 64x64 for the tiny one): a tensor (len(words), h, w) on the CPU."""
        import torch

        inputs = self.processor(text=list(words), images=[picture] * len(words), padding=True, truncation=True,
                                max_length=self.max_tokens, return_tensors="pt").to(self.device)
        with torch.inference_mode():
            out = self.model(**inputs).logits
        return out.reshape(len(words), *out.shape[-2:]).float().cpu()

    def probabilities(self, picture, words: list[str]):
        """For each phrase, a float32 numpy array (height, width) at the picture's size: the
        sigmoid of CLIPSeg's logits, resized bilinearly (align_corners=False)."""
        import torch

        probs = torch.sigmoid(self.logits(picture, words))[:, None]
        w, h = picture.size
        resized = torch.nn.functional.interpolate(probs, size=(h, w), mode="bilinear", align_corners=False)
        return resized[:, 0].numpy()
