"""Speed settings of the Stable Diffusion backend, and the VAE's overflow guard.

- `diffusion.vae: taesd | PATH`: the tiny autoencoder decodes instead of the full VAE (much
  faster, slightly softer pictures); recorded in `data.vae`.
- `diffusion.channels_last` and `diffusion.compile`: memory layout (UNets only) and `torch.compile`
  of the denoiser (UNet or transformer, `families.denoiser`), for GPUs; on a CPU they are left off with a note in the log (they slow CPUs down or
  take minutes to compile for little gain).
- `vae_guard`: a half-precision VAE can overflow (NaN or an all-black picture); the decode is
  then retried once with the VAE in fp32 instead of failing, and the retry is recorded.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def apply_speed(backend) -> dict:
    """Apply the profile's speed settings to `backend.text2img`; returns what goes into `data`
    (`vae`: None for the model's own VAE, else `taesd` or the folder)."""
    spec, pipe = backend.spec, backend.text2img
    record: dict = {"vae": None}
    vae = getattr(spec, "vae", None)
    if vae:
        from visionloop.models.taesd import load_taesd

        tiny = spec.model == "tiny"
        cache = Path(backend.source).parent if tiny else Path(".")
        name = vae
        if vae == "taesd" and not tiny:  # the tiny autoencoder of the family's own latent space
            name = _family_taesd(backend)
        taesd, source = load_taesd(name, backend.dtype, tiny, cache, backend._load_kwargs)
        pipe.vae = taesd.to(backend.device)
        pipe.register_modules(vae=pipe.vae)
        record["vae"] = vae if vae == "taesd" else source
    on_gpu = not str(backend.device).startswith("cpu")
    if getattr(spec, "channels_last", False):
        from visionloop.models.families import denoiser, family_of

        if family_of(pipe).denoiser != "unet":  # SD3, FLUX: a transformer works on token sequences
            log.info("channels_last is for UNets; %s denoises with a transformer, left as it is", family_of(pipe).name)
        elif on_gpu:
            import torch

            denoiser(pipe).to(memory_format=torch.channels_last)
        else:
            log.info("channels_last is for GPUs; left off on the CPU")
    return record


def _family_taesd(backend) -> str:
    """`taesd` for the loaded family: SD 1.x/2.x, SDXL, SD3 and FLUX latents differ."""
    from visionloop.errors import ModelError
    from visionloop.models.families import family_of

    family = family_of(backend.text2img)
    if family.taesd is None:
        raise ModelError(f"diffusion.vae: taesd: there is no tiny autoencoder for {family.name} models; "
                         f"set diffusion.vae to null (check {backend.where('diffusion.vae')})")
    return family.taesd


def compile_wanted(spec, device: str) -> bool:
    """`compile: true` compiles the denoiser (the UNet, or the transformer of SD3 and FLUX:
    `families.denoiser`) on a GPU; on the CPU it is a no-op with a note."""
    if not spec.compile:
        return False
    if str(device).startswith("cpu"):
        log.warning("compile: true is for GPUs; the denoiser (UNet or transformer) is not compiled on the CPU")
        return False
    return True


def _bad(sample) -> bool:
    """NaN/inf anywhere, or all black (decoded pixels are in [-1, 1])."""
    import torch

    return (not bool(torch.isfinite(sample).all())) or float(sample.max()) <= -1.0 + 2.0 / 255.0


@contextlib.contextmanager
def vae_guard(pipe):
    """During one pipeline call: a VAE decode in fp16/bf16 that comes out NaN or black is
    decoded again with the VAE in fp32. Yields a list that gets True for each retry."""
    import torch

    vae = getattr(pipe, "vae", None)
    retried: list[bool] = []
    if vae is None:
        yield retried
        return
    original = vae.decode

    def decode(latents, *args, **kwargs):
        out = original(latents, *args, **kwargs)
        sample = out[0] if isinstance(out, tuple) else out.sample
        if vae.dtype == torch.float32 or not _bad(sample):
            return out
        dtype = vae.dtype
        log.info("the VAE overflowed in %s: decoding again in float32", dtype)
        retried.append(True)
        vae.to(torch.float32)
        try:
            return original(latents.float(), *args, **kwargs)
        finally:
            vae.to(dtype)

    vae.decode = decode
    try:
        yield retried
    finally:
        del vae.decode  # the class's own method again
