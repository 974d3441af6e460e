"""Measuring the Stable Diffusion backend: seconds per denoising step, per picture, per decode,
and peak memory. Used by `visionloop bench` and benchmarks/full_size.py; the timings come from
hooks on the loaded pipeline's modules while our own `generate()` runs (nothing is re-implemented).
"""

from __future__ import annotations

import gc
import resource
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass


@dataclass
class DrawTiming:
    """One measured picture: `step_seconds` is the UNet's time per denoising step (one UNet call
    per step, both halves of classifier-free guidance in one batch), `decode_seconds` the VAE
    (or TAESD) decode, `text_seconds` the text encoder, `picture_seconds` the whole call."""

    dtype: str
    width: int
    height: int
    steps: int
    scheduler: str | None
    vae: str | None
    step_seconds: float
    decode_seconds: float
    text_seconds: float
    picture_seconds: float
    peak_memory_mb: float
    status: str

    def to_dict(self) -> dict:
        return asdict(self)


def supported_dtypes(device: str) -> list[str]:
    """The dtypes worth measuring on `device` (every one the device computes in)."""
    import torch

    if device.startswith("cuda"):
        return ["float32", "float16"] + (["bfloat16"] if torch.cuda.is_bf16_supported() else [])
    if device == "mps":
        return ["float32", "float16"]
    return ["float32", "bfloat16"]


def peak_memory_mb(device: str) -> float:
    """Peak memory so far: the GPU's allocator peak on CUDA, else the process's peak resident set."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024


@contextmanager
def _timed(module, name: str, into: dict):
    """Add the seconds `module`'s forward calls take to `into[name]` (and count them)."""
    state = {}

    def pre(mod, args, kwargs=None):
        state["t"] = time.perf_counter()

    def post(mod, args, output):
        into[name] = into.get(name, 0.0) + time.perf_counter() - state.pop("t", time.perf_counter())
        into[name + "_calls"] = into.get(name + "_calls", 0) + 1

    handles = [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def measure_draw(backend, *, steps: int, width: int, height: int, scheduler: str | None = None,
                 guidance: float = 7.5, prompt: str = "a lighthouse on a cliff at sunset", seed: int = 1,
                 loras=()) -> DrawTiming:
    """Draw one picture with `backend.generate` and time its parts."""
    from visionloop.models.device import dtype_name

    pipe = backend.text2img
    parts: dict = {}
    decoder = pipe.vae.decoder
    gc.collect()
    if str(backend.device).startswith("cuda"):
        import torch

        torch.cuda.reset_peak_memory_stats()
    denoiser = getattr(pipe, "unet", None) or pipe.transformer  # SD3 and FLUX denoise with a transformer
    with _timed(denoiser, "unet", parts), _timed(decoder, "decode", parts), \
            _timed(pipe.text_encoder, "text", parts):
        started = time.perf_counter()
        gen = backend.generate("text2img", prompt=prompt, negative_prompt=None, steps=steps, guidance=guidance,
                               seeds=[seed], width=width, height=height, scheduler=scheduler, loras=loras)
        total = time.perf_counter() - started
    return DrawTiming(dtype=dtype_name(backend.dtype), width=width, height=height, steps=steps,
                      scheduler=scheduler, vae=(getattr(backend, "speed", {}) or {}).get("vae"),
                      step_seconds=parts.get("unet", 0.0) / max(1, parts.get("unet_calls", 1)),
                      decode_seconds=parts.get("decode", 0.0), text_seconds=parts.get("text", 0.0),
                      picture_seconds=total, peak_memory_mb=round(peak_memory_mb(str(backend.device)), 1),
                      status=gen.status[0])


def diffusion_backend(config, model: str, dtype: str, vae: str | None = None, loras=()):
    """A fresh `DiffusionBackend` of `model` (a folder or hub id, or `tiny`) in `dtype`, with the
    rest of `config`'s active profile (`vae`: None keeps the model's own)."""
    from visionloop.models.cache import ModelCache

    config = config.model_copy(deep=True)
    config.dtype = dtype
    spec = config.profiles[config.profile].diffusion
    spec.model, spec.inpaint_model, spec.vae, spec.compile = model, None, vae, False
    if loras is not None:
        spec.loras = list(loras)
    return ModelCache(config).diffusion()
