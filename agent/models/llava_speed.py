"""Speed settings of the in-process LLaVA backend: int8 language model, kept image encodings.

- `vision.quantize: auto | none | int8`: int8 dynamic quantization of the language model's linear
  layers (and its output head) with PyTorch's own `quantize_dynamic` (weights in int8, activations
  quantized per call): on a CPU decoding runs several times faster for a small loss of precision.
  `auto` is int8 on a CPU when `dtype: auto`, none elsewhere (GPUs run in fp16/bf16 instead). The
  vision tower and the projector stay in full precision. `int4` needs a GPU and torchao.
- `ImageFeatureCache`: the vision tower's output for the last few pictures, keyed by the exact
  pixel values the processor prepared, so a second question about the same picture (a chat's
  follow-up, `see -q A -q B`, a workflow asking twice) skips the vision tower. The features are the
  very tensors the first call computed, so answers are bit for bit those of an uncached call.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import warnings
from collections import OrderedDict

from visionloop.errors import ConfigError

log = logging.getLogger(__name__)

QUANTIZE = ("auto", "none", "int8", "int4")


def resolve_quantize(setting: str, dtype_setting: str, device: str, where: str = "vision.quantize") -> str:
    """What `vision.quantize` means on `device`: `none` or `int8` (`int4` is refused here).
    `where` names the setting in a refusal (`profiles.NAME.vision.quantize in FILE`)."""
    if setting == "auto":
        return "int8" if dtype_setting == "auto" and str(device).startswith("cpu") else "none"
    if setting == "int4":
        raise ConfigError(f"{where}: int4 needs a CUDA GPU and the torchao package; "
                          "on this device use int8 or none")
    if setting == "int8" and not str(device).startswith("cpu"):
        raise ConfigError(f"{where}: int8 dynamic quantization runs on the CPU, not on {device}; "
                          "on a GPU use dtype float16 or bfloat16 (quantize: none)")
    return setting


def recorded_quantize(manifest: dict) -> str | None:
    """How the in-process LLaVA of a run manifest was quantized (`environment.models.llava.quantize`),
    for a replay to force: `none` for a manifest written before quantization existed; None when
    no in-process LLaVA ran."""
    env = manifest.get("environment") if isinstance(manifest.get("environment"), dict) else {}
    models = env.get("models") if isinstance(env.get("models"), dict) else {}
    llava = models.get("llava")
    if not isinstance(llava, dict):
        return None
    return llava.get("quantize") if llava.get("quantize") in ("none", "int8") else "none"


def quantize_int8(model) -> int:
    """Quantize `model`'s language model (every `nn.Linear`) and output head to int8 in place.
    Returns how many linear layers were quantized."""
    import torch
    from torch import nn

    inner = getattr(model, "model", model)
    language = getattr(inner, "language_model", None) or getattr(model, "language_model", None)
    if language is None:
        raise ConfigError(f"vision.quantize: int8: {type(model).__name__} has no language_model to quantize")
    with warnings.catch_warnings():  # torch.ao's eager quantization prints a deprecation notice
        warnings.simplefilter("ignore")
        from torch.ao.quantization import quantize_dynamic

        before = sum(isinstance(m, nn.Linear) for m in language.modules())
        quantize_dynamic(language, {nn.Linear}, dtype=torch.qint8, inplace=True)
        head = getattr(model, "lm_head", None)
        if isinstance(head, nn.Linear):
            model.lm_head = quantize_dynamic(nn.Sequential(head), {nn.Linear}, dtype=torch.qint8)[0]
            before += 1
    return before


def _fingerprint(value) -> object:
    """A hashable summary of one argument of `get_image_features`: tensors by their bytes."""
    import torch

    if isinstance(value, torch.Tensor):
        t = value.detach().contiguous().cpu()
        digest = hashlib.blake2b(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"", digest_size=16)
        return ("tensor", str(t.dtype), tuple(t.shape), digest.hexdigest())
    if isinstance(value, (list, tuple)):
        return tuple(_fingerprint(v) for v in value)
    return repr(value)


class ImageFeatureCache:
    """Wraps the model's `get_image_features` with a small LRU cache (`size` entries).
    `runs` counts the vision tower's real runs, `hits` the calls answered from the cache."""

    def __init__(self, model, size: int = 8):
        self.size = size
        self.runs = 0
        self.hits = 0
        self._entries: OrderedDict = OrderedDict()
        inner = getattr(model, "model", model)
        self._owner = inner if hasattr(inner, "get_image_features") else model
        self._original = self._owner.get_image_features

        def get_image_features(*args, **kwargs):
            return self._cached(*args, **kwargs)

        # generate() reads the signature to know which arguments are the encoder's
        self._owner.get_image_features = functools.wraps(self._original)(get_image_features)

    def _cached(self, *args, **kwargs):
        key = (_fingerprint(args), tuple(sorted((k, _fingerprint(v)) for k, v in kwargs.items())))
        if key in self._entries:
            self._entries.move_to_end(key)
            self.hits += 1
            return self._entries[key]
        out = self._original(*args, **kwargs)
        self.runs += 1
        if self.size > 0:
            self._entries[key] = out
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return out

    def clear(self) -> None:
        self._entries.clear()
