"""The tiny autoencoder (TAESD, diffusers `AutoencoderTiny`) for fast decoding.

`diffusion.vae: taesd` loads `madebyollin/taesd` (SD 1.5's latent space); on the `tiny`
profile it is a small random TAESD built here (deterministic, saved like the other tiny
models) whose scale factor matches the tiny VAE's. `diffusion.vae: PATH` loads a folder.
"""

from __future__ import annotations

from pathlib import Path

#: The hub model `taesd` means for SD 1.x/2.x latents.
TAESD_HUB_ID = "madebyollin/taesd"


def build_tiny_taesd(target: Path) -> None:
    """A random TAESD for the tiny SD (2 blocks: scale factor 2, 4 latent channels)."""
    import torch
    from diffusers import AutoencoderTiny

    torch.manual_seed(3)
    vae = AutoencoderTiny(encoder_block_out_channels=(16, 16), decoder_block_out_channels=(16, 16),
                          num_encoder_blocks=(1, 1), num_decoder_blocks=(1, 1), latent_channels=4)
    vae.save_pretrained(Path(target), safe_serialization=True)


def tiny_taesd_path(cache_dir: Path) -> Path:
    """The tiny TAESD's folder under `cache_dir`, built on first use."""
    import os
    import tempfile

    target = Path(cache_dir) / "tiny-taesd-v1"
    if not (target / "config.json").exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tiny-taesd-"))
        build_tiny_taesd(tmp)
        try:
            os.replace(tmp, target)
        except OSError:  # another process built it first
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_taesd(name: str, dtype, tiny: bool, cache_dir: Path, load_kwargs: dict):
    """The `AutoencoderTiny` that `diffusion.vae: NAME` means (`taesd` or a folder/hub id)."""
    from diffusers import AutoencoderTiny

    if name == "taesd":
        source = str(tiny_taesd_path(cache_dir)) if tiny else TAESD_HUB_ID
    else:
        source = name
    from visionloop.models.loading import load_guarded, quiet_loading

    kwargs = {k: v for k, v in load_kwargs.items() if k in ("revision", "local_files_only", "use_safetensors")}
    kwargs.pop("revision", None)  # the profile's revision pins the main model
    with quiet_loading():  # a bad name or folder: one line naming diffusion.vae, not the hub's warnings
        vae = load_guarded(f"diffusion.vae: {source}",
                           lambda: AutoencoderTiny.from_pretrained(source, torch_dtype=dtype, **kwargs))
    return vae, source
