"""One generation on a prepared pipeline: a batch-of-one call per seed (and the refiner's second
stage where there is one), cancel between steps and images, the half-precision VAE guard, a
status per image (a black picture is never a silent success) and out of memory as a message.
`DiffusionBackend.generate` (diffusion.py) prepares the pipeline and its keyword arguments.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field

from visionloop.errors import Cancelled, VisionloopError


@dataclass
class Generation:
    """One `generate()` run: one batch-of-one pipeline call per seed.

    `images` are PIL images, one per seed; `status` says per image `ok`, `nsfw` (flagged by
    the safety checker: the pipeline blacked it out), `nan` or `black` (numerical overflow).
    `scheduler` is the diffusers class that ran and `pipeline` the pipeline class.
    """

    images: list
    status: list[str]
    scheduler: str
    pipeline: str
    seconds: float = 0.0
    nsfw_content_detected: list[bool] | None = None
    options: dict = field(default_factory=dict)
    loras: list = field(default_factory=list)  # every LoRA in use: name, path, sha256, scale
    notes: list[str] = field(default_factory=list)  # what the family did differently (ignored inputs)


def cancel_callback(cancel):
    """`callback_on_step_end` that stops the denoising loop at the next step when asked."""

    def callback(pipe, step, timestep, callback_kwargs):
        if cancel.is_set():
            raise Cancelled("cancelled")
        return callback_kwargs

    return callback


def denoise(pipe, kwargs: dict, seeds: list[int], *, width: int, height: int, progress: bool = False,
            cancel=None, then=None):
    """Call `pipe(**kwargs)` once per seed with a CPU generator seeded with it; `then(images,
    generator)` is a second stage (the SDXL refiner) run on each first output with the same
    generator. Returns the images (numpy, 0-1), the safety flags (None: no checker), the seeds
    whose VAE decode was retried in fp32, and the seconds spent."""
    import torch
    from visionloop.models.speed import vae_guard

    started = time.perf_counter()
    arrays, flagged, vae_float32 = [], [], []
    for i, seed in enumerate(seeds):
        if cancel is not None and cancel.is_set():
            raise Cancelled("cancelled")
        desc = f"image {i + 1}/{len(seeds)}" if len(seeds) > 1 else None
        pipe.set_progress_bar_config(disable=not progress, leave=False, desc=desc)
        generator = torch.Generator("cpu").manual_seed(int(seed))
        with vae_guard(pipe) as retried:  # an overflowing half-precision VAE decodes again in fp32
            out = call(pipe, kwargs, generator, width, height)
            if then is not None:
                out = then(out.images, generator)
        if retried:
            vae_float32.append(int(seed))
        arrays.extend(out.images)
        # SDXL, SD3 and FLUX pipelines have no checker at all: None
        flags = getattr(out, "nsfw_content_detected", None)
        flagged = None if flags is None or flagged is None else flagged + [bool(f) for f in flags]
    return arrays, flagged, vae_float32, time.perf_counter() - started


def statuses(arrays, flagged) -> list[str]:
    """Per image: `nsfw`, `nan`, `black` or `ok`."""
    import numpy as np

    status = []
    for i, arr in enumerate(arrays):
        if flagged is not None and flagged[i]:
            status.append("nsfw")
        elif not np.isfinite(arr).all():
            status.append("nan")
        elif float(arr.max()) <= 1.0 / 255.0:
            status.append("black")
        else:
            status.append("ok")
    return status


def call(pipe, kwargs: dict, generator, width: int, height: int, **more):
    """One pipeline call; out of memory becomes a message and the process stays usable."""
    import torch

    try:
        with torch.inference_mode():
            return pipe(**kwargs, **more, generator=generator)
    except torch.cuda.OutOfMemoryError:
        pass
    except RuntimeError as exc:  # MPS and some CUDA paths raise a plain RuntimeError
        if "out of memory" not in str(exc).lower():
            raise
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    raise VisionloopError(
        f"out of GPU memory drawing one image at {width}x{height}: try a smaller size, "
        "or set diffusion.offload to model (or sequential) in the config")
