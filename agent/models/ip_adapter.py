"""IP-Adapter: a reference picture as an image prompt (`restyle --style-image`).

`IpAdapterBackend` (one per process, in the `ModelCache`) holds what the profile's
`diffusion.ip_adapter` names: the adapter's weights (read once from its safetensors file, in
the h94 layout: `image_proj.*` + `ip_adapter.*`) and its CLIP image encoder with projection.

`attached(backend, adapter, scale)` puts the adapter on the shared pipeline through diffusers'
own `load_ip_adapter` (given the weights as a state dict) and `set_ip_adapter_scale`, on
`backend.text2img`: the UNet is shared, so the image-to-image and inpainting pipelines made
with `from_pipe` have it too. It is taken off again (`unload_ip_adapter`) when the call ends,
which restores the plain output exactly: a UNet carrying an adapter cannot run without an
image prompt, and draw, edit and restyle without a reference must be what they were.

The reference is encoded here (`embeds`), the way the pipeline's own `encode_image` does it,
and handed to the pipeline as `ip_adapter_image_embeds`: the pipelines then need no image
encoder of their own, whichever was made first.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from visionloop.errors import ModelError
from visionloop.models.loading import (
    hub_kwargs,
    load_guarded,
    quiet_loading,
    weights_kwargs,
)
from visionloop.paths import user_path


def _hub_file(repo: str, filename: str, subfolder: str, revision: str | None, offline: bool, check: str) -> Path:
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo, filename, subfolder=subfolder or None, revision=revision,
                                    local_files_only=offline))
    except Exception as exc:  # noqa: BLE001  (the hub's many error classes: one line)
        where = f"{repo}/{subfolder + '/' if subfolder else ''}{filename}"
        why = "not in the local cache and offline" if offline else str(exc).splitlines()[0][:160]
        raise ModelError(f"{where}: cannot get the IP-Adapter weights: {why} {check}") from None


def locate(cache, spec, offline: bool) -> tuple[Path, str, str | None]:
    """(the adapter's safetensors file, the image encoder's `from_pretrained` source, its
    subfolder) for the profile's `diffusion.ip_adapter`."""
    from visionloop.config import TINY
    from visionloop.models.loading import check_hub_id

    check = f"(check {cache.where('diffusion.ip_adapter')})"
    if not spec.weight.endswith(".safetensors"):
        raise ModelError(f"{spec.weight}: IP-Adapter weights are loaded from .safetensors files only {check}")
    if spec.model == TINY:
        from visionloop.models.tiny import tiny_model_path

        root = str(tiny_model_path("ip_adapter", cache.config.cache_path))
    else:
        root = spec.model
    local = user_path(root)
    if local.is_dir():
        weight = local / spec.subfolder / spec.weight
        if not weight.is_file():
            raise ModelError(f"{weight}: IP-Adapter weights not found {check}")
    elif root.startswith(("/", ".", "~")) or local.exists():
        raise ModelError(f"{root}: IP-Adapter folder not found {check}")
    else:
        check_hub_id(root, check)
        weight = _hub_file(root, spec.weight, spec.subfolder, spec.revision, offline, check)
    encoder = spec.image_encoder
    if "/" not in encoder:  # a folder beside the weights, as diffusers' image_encoder_folder
        sub = "/".join(p for p in (spec.subfolder, encoder) if p)
        return weight, (str(local / sub) if local.is_dir() else root), (None if local.is_dir() else sub)
    if user_path(encoder).is_dir():
        return weight, str(user_path(encoder)), None
    parts = encoder.split("/")
    check_hub_id("/".join(parts[:2]), check)
    return weight, "/".join(parts[:2]), "/".join(parts[2:]) or None


class IpAdapterBackend:
    """The adapter's weights and its image encoder, loaded once."""

    kind = "ip_adapter"

    def __init__(self, spec, weight: Path, encoder_source: str, encoder_subfolder: str | None, device: str, dtype,
                 offline: bool = False):
        from safetensors import safe_open
        from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection
        from visionloop.images import sha256_file

        started = time.perf_counter()
        self.spec = spec
        self.model_id = spec.model
        self.source = str(weight)
        self.revision = spec.revision
        self.device = device
        self.dtype = dtype
        self.sha256 = sha256_file(weight)
        state: dict = {"image_proj": {}, "ip_adapter": {}}
        with safe_open(str(weight), framework="pt", device="cpu") as f:  # as load_ip_adapter reads it
            for key in f.keys():  # noqa: SIM118  (a safetensors file: no __iter__)
                head, _, rest = key.partition(".")
                if head in state:
                    state[head][rest] = f.get_tensor(key)
        if not state["image_proj"] or not state["ip_adapter"]:
            raise ModelError(f"{weight}: not an IP-Adapter file (no image_proj.* and ip_adapter.* weights)")
        self.state = state
        kwargs = {**hub_kwargs(spec.revision, offline, False), **weights_kwargs(False)}
        if encoder_subfolder:
            kwargs["subfolder"] = encoder_subfolder
        self.encoder_source = encoder_source + (f"/{encoder_subfolder}" if encoder_subfolder else "")
        with quiet_loading():
            self.encoder = load_guarded(self.encoder_source, lambda: CLIPVisionModelWithProjection.from_pretrained(
                encoder_source, dtype=dtype, **kwargs)).to(device).eval()
            try:
                self.processor = CLIPImageProcessor.from_pretrained(encoder_source, **kwargs)
            except (OSError, ValueError):  # h94's encoder folder has no processor: diffusers' default
                size = self.encoder.config.image_size
                self.processor = CLIPImageProcessor(size=size, crop_size=size)
        self.load_seconds = time.perf_counter() - started

    def record(self, scale: float) -> dict:
        """What `data` says about the adapter in use."""
        return {"model": self.spec.model, "subfolder": self.spec.subfolder, "weight": self.spec.weight,
                "image_encoder": self.encoder_source, "revision": self.spec.revision, "sha256": self.sha256,
                "scale": scale}

    def embeds(self, picture, guided: bool):
        """The reference as `ip_adapter_image_embeds` for one adapter: its image embedding,
        shape (1, 1, dim), with a zero embedding before it when classifier-free guidance runs
        (exactly what the pipeline's `encode_image` + `prepare_ip_adapter_image_embeds` make)."""
        import torch

        pixels = self.processor(picture, return_tensors="pt").pixel_values
        pixels = pixels.to(device=self.device, dtype=next(self.encoder.parameters()).dtype)
        with torch.inference_mode():
            embeds = self.encoder(pixels).image_embeds[None, :]
        if guided:
            embeds = torch.cat([torch.zeros_like(embeds), embeds], dim=0)
        return [embeds]


def guided(pipe, guidance: float) -> bool:
    """Does this pipeline call run classifier-free guidance (so image embeds come in pairs)?"""
    return guidance > 1 and getattr(pipe.unet.config, "time_cond_proj_dim", None) is None


@contextlib.contextmanager
def attached(backend, adapter: IpAdapterBackend, scale: float):
    """The adapter on the shared UNet at `scale` for the duration of the block, then off again."""
    import logging

    pipe = backend.text2img
    state = {part: dict(weights) for part, weights in adapter.state.items()}  # diffusers may pop keys
    slicing = bool(backend.spec.attention_slicing)
    # "image_encoder is not loaded": on purpose, the embeddings are made here (`embeds`)
    quiet = logging.getLogger("diffusers.loaders.ip_adapter")
    level = quiet.level
    try:
        if slicing:  # the loader rebuilds the other processors by class: sliced ones cannot be rebuilt
            pipe.unet.set_default_attn_processor()
        quiet.setLevel(logging.ERROR)
        with quiet_loading():
            load_guarded(adapter.source, lambda: _load(pipe, state, adapter, backend))
        quiet.setLevel(level)
        pipe.set_ip_adapter_scale(float(scale))
        yield pipe
    finally:
        quiet.setLevel(level)
        if loaded(pipe):  # also after a load that failed half way
            pipe.unload_ip_adapter()
        if slicing:  # back to what the profile asked for
            pipe.enable_attention_slicing()


def _load(pipe, state: dict, adapter, backend) -> None:
    """diffusers' `load_ip_adapter`; weights shaped for another UNet (an SD 1.5 adapter on an
    SDXL model, or the reverse) are one line naming the adapter and the model's family."""
    try:
        pipe.load_ip_adapter(state, subfolder="", weight_name="", image_encoder_folder=None)
    except (ValueError, RuntimeError) as exc:
        text = str(exc)
        if "expected shape" not in text and "size mismatch" not in text:
            raise
        family = getattr(getattr(backend, "family", None), "name", "unknown")
        weight = "/".join(p for p in (adapter.spec.subfolder, adapter.spec.weight) if p)
        fits = ("sdxl_models/ip-adapter_sdxl.safetensors" if family == "sdxl"
                else "models/ip-adapter_sd15.safetensors")
        raise ModelError(f"{weight}: this IP-Adapter does not fit {backend.model_id}, a {family} model (its weights "
                         f"are shaped for another family's UNet); use one made for {family}, e.g. h94/IP-Adapter "
                         f"{fits} (check diffusion.ip_adapter)") from None


def loaded(pipe) -> bool:
    """Does the pipeline's UNet carry an IP-Adapter (its projection or its attention processors)?"""
    unet = pipe.unet
    return getattr(unet, "encoder_hid_proj", None) is not None or any(
        type(p).__name__.startswith("IPAdapter") for p in unet.attn_processors.values())
