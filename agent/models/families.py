"""Model families of the diffusion backend: everything that depends on the family, in one table.

The backend never assumes a UNet: it asks the loaded pipeline what it is (`family_of(pipe)`: its
class, its components) and reads the rest here: which module denoises (`unet` or
`transformer`), which schedulers fit (DDPM-style noise schedules, or flow matching), which text
encoders it has, its image-to-image and inpainting classes (all made with `from_pipe`, on the
same modules), how sizes must divide, and whether LoRAs, IP-Adapters and a refiner apply.
A pipeline of no family here (PixArt, Kandinsky, ...) gets a generic entry built from what
diffusers itself knows about it, so a capability it lacks is a one-line error, never an
`AttributeError`.
"""

from __future__ import annotations

from dataclasses import dataclass

from visionloop.errors import InputError

#: The flow-matching schedulers (friendly names, schedulers.py's FLOW_SCHEDULERS).
FLOW = ("flow_euler", "flow_heun")


@dataclass(frozen=True)
class Family:
    name: str  # recorded as `family` in data, PNG records and manifests
    label: str  # for messages and the README
    prefix: str  # pipeline class names of the family start with it (and no longer prefix matches)
    denoiser: str  # the component that denoises: "unet" or "transformer"
    encoders: tuple[str, ...]  # its text encoders
    img2img: str | None  # the diffusers class `restyle` runs (None: the family has none)
    inpaint: str | None  # the diffusers class `edit` runs
    schedulers: tuple[str, ...] | None  # friendly names that fit; None: every DDPM-style one
    pack: int = 1  # latents packed pack x pack into tokens (FLUX: 2)
    negative_prompt: bool = True  # False: ignored by the family's pipelines (FLUX without true CFG)
    lora: bool = True
    ip_adapter: str | None = None  # None when the project loads IP-Adapters for it; else why not
    refiner: bool = False  # SDXL: an optional second stage (`diffusion.refiner`)
    taesd: str | None = None  # the tiny autoencoder (`diffusion.vae: taesd`) of its latent space
    example: str = ""  # a hub id the README names

    def require(self, capability: str, tool: str) -> None:
        """A one-line error when this family cannot do `capability` (asked for by `tool`)."""
        why = {"img2img": None if self.img2img else "diffusers has no image-to-image pipeline for it",
               "inpaint": None if self.inpaint else "diffusers has no inpainting pipeline for it",
               "lora": None if self.lora else "its pipeline cannot load LoRA weights",
               "ip_adapter": self.ip_adapter,
               "refiner": None if self.refiner else "a refiner (diffusion.refiner) is an SDXL second stage"}[capability]
        if why:
            raise InputError(f"{tool} is not available for {self.name}: {why} ({self.label})")

    def fitting_schedulers(self) -> tuple[str, ...]:
        from visionloop.models.schedulers import SCHEDULERS

        return self.schedulers or tuple(SCHEDULERS)

    def check_scheduler(self, name: str) -> None:
        """A scheduler of another noise schedule than the family's is refused, naming those that fit."""
        fits = self.fitting_schedulers()
        if name not in fits:
            kind = "flow matching" if self.schedulers else "a DDPM-style noise schedule"
            raise InputError(f"scheduler: {name} does not fit {self.name} models ({kind}); "
                             f"use one of: {', '.join(fits)} (or none: the model's own)")


_NO_IP_FLOW = "the project loads h94-style (CLIP) IP-Adapters for SD 1.x/2.x and SDXL only"

FAMILIES: tuple[Family, ...] = (
    Family("sd", "Stable Diffusion 1.x/2.x", "StableDiffusion", "unet", ("text_encoder",),
           "StableDiffusionImg2ImgPipeline", "StableDiffusionInpaintPipeline", None, taesd="madebyollin/taesd",
           example="stable-diffusion-v1-5/stable-diffusion-v1-5"),
    Family("sdxl", "Stable Diffusion XL", "StableDiffusionXL", "unet", ("text_encoder", "text_encoder_2"),
           "StableDiffusionXLImg2ImgPipeline", "StableDiffusionXLInpaintPipeline", None, refiner=True,
           taesd="madebyollin/taesdxl", example="stabilityai/stable-diffusion-xl-base-1.0"),
    Family("sd3", "Stable Diffusion 3/3.5", "StableDiffusion3", "transformer",
           ("text_encoder", "text_encoder_2", "text_encoder_3"), "StableDiffusion3Img2ImgPipeline",
           "StableDiffusion3InpaintPipeline", FLOW, ip_adapter=_NO_IP_FLOW,
           taesd="madebyollin/taesd3", example="stabilityai/stable-diffusion-3.5-medium"),
    Family("flux", "FLUX.1", "Flux", "transformer", ("text_encoder", "text_encoder_2"), "FluxImg2ImgPipeline",
           "FluxInpaintPipeline", ("flow_euler",), pack=2, negative_prompt=False, ip_adapter=_NO_IP_FLOW,
           taesd="madebyollin/taef1", example="black-forest-labs/FLUX.1-schnell"),
)


def family_of(pipe) -> Family:
    """The family of a loaded pipeline, by its class (the longest matching prefix wins:
    `StableDiffusionXLPipeline` is sdxl, not sd); unknown classes get `generic(pipe)`."""
    name = type(pipe).__name__
    matches = [f for f in FAMILIES if name.startswith(f.prefix)]
    return max(matches, key=lambda f: len(f.prefix)) if matches else generic(pipe)


def generic(pipe) -> Family:
    """An entry for a pipeline of no known family, from its components and the classes
    diffusers has beside it (`KolorsPipeline` -> `KolorsImg2ImgPipeline`; none: that tool is
    not available for it, in one line)."""
    name = type(pipe).__name__
    denoiser = "unet" if getattr(pipe, "unet", None) is not None else "transformer"
    encoders = tuple(n for n in ("text_encoder", "text_encoder_2", "text_encoder_3")
                     if getattr(pipe, n, None) is not None)
    flow = "FlowMatch" in type(getattr(pipe, "scheduler", None)).__name__
    return Family(name, "no family in the table", name, denoiser, encoders, _sibling(name, "Img2Img"), _sibling(name, "Inpaint"),
                  FLOW if flow else None, lora=hasattr(pipe, "load_lora_weights"), ip_adapter=_NO_IP_FLOW)


def _sibling(cls_name: str, kind: str) -> str | None:
    """diffusers' `<Base><kind>Pipeline` beside `<Base>Pipeline`, if it has one (its lazy
    module lists every class without importing them)."""
    import diffusers

    candidate = f"{cls_name.removesuffix('Pipeline')}{kind}Pipeline"
    return candidate if cls_name.endswith("Pipeline") and candidate in dir(diffusers) else None


def denoiser(pipe):
    """The module that denoises: the UNet, or the transformer of SD3 and FLUX."""
    return getattr(pipe, family_of(pipe).denoiser)


def native_size(pipe) -> int:
    """The model's own side in pixels: its sample size (the pipeline's `default_sample_size`
    where it has one) times the VAE's scale factor: 512 for SD 1.5, 1024 for SDXL, SD3, FLUX."""
    sample = getattr(pipe, "default_sample_size", None) or denoiser(pipe).config.sample_size
    return int(sample) * int(getattr(pipe, "vae_scale_factor", 8))


def size_multiple(pipe) -> int:
    """What width and height must divide by: the VAE's scale factor times the transformer's
    patch size (SD3) or the latent packing (FLUX); 8 for SD 1.5 and SDXL."""
    fam = family_of(pipe)
    patch = 1
    if fam.denoiser == "transformer":
        patch = getattr(denoiser(pipe).config, "patch_size", None) or 1
    return max(8, int(getattr(pipe, "vae_scale_factor", 8)) * int(patch) * fam.pack)
