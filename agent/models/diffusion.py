"""The diffusion backend: one set of weights shared by draw, restyle and edit.

`AutoPipelineForText2Image.from_pretrained` loads the model (SD 1.x/2.x, SDXL, SD3/3.5,
FLUX.1, ...: the class follows the model's `model_index.json`); the backend then asks the
pipeline what it is (`families.family_of`: its class and components) rather than assuming a
UNet. Image-to-image and inpainting pipelines are the family's classes made with `from_pipe`,
which reuses the very same modules, so the three tools hold one copy of the weights; a tool the
family has no pipeline for is a one-line error. A dedicated inpainting checkpoint, when the
profile names one, gets its own denoiser but shares the text encoders and the VAE (the
profile's LoRAs apply to the main denoiser only). SDXL may add its refiner (`diffusion.refiner`)
as a second stage of `draw`, sharing the second text encoder and the VAE.

Config knobs that reach the pipeline: dtype, device, attention slicing, VAE tiling, CPU
offload, `torch.compile`, LoRAs with scales (diffusion_loras.py), the safety checker,
`text_encoder_3: null` (SD3 without T5). diffusion_run.py runs the calls, seed by seed.
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
import time

from visionloop.errors import InputError, ModelError
from visionloop.models import diffusion_run as run
from visionloop.models import loading
from visionloop.models import schedulers as names
from visionloop.models.diffusion_loras import LoraSlots
from visionloop.models.diffusion_run import Generation
from visionloop.models.families import family_of, native_size, size_multiple

__all__ = ["DiffusionBackend", "Generation", "dtype_kwargs"]

log = logging.getLogger(__name__)

#: Components a dedicated inpainting checkpoint borrows from the main model.
SHARED_WITH_INPAINT = ("text_encoder", "text_encoder_2", "text_encoder_3", "tokenizer", "tokenizer_2",
                       "tokenizer_3", "vae", "safety_checker", "feature_extractor")


def dtype_kwargs(dtype) -> dict:
    """`dtype=` on diffusers that have it, else the older `torch_dtype=`."""
    try:
        from diffusers.utils.deprecation_utils import _resolve_dtype  # noqa: F401  (present since `dtype` exists)

        return {"dtype": dtype}
    except ImportError:
        return {"torch_dtype": dtype}


class DiffusionBackend(LoraSlots):
    """Holds the loaded pipelines. `generate()` runs any of the three modes, one call per seed."""

    kind = "diffusion"

    def __init__(self, spec, source: str, device: str, dtype, inpaint_source: str | None = None,
                 offline: bool = False, allow_pickle: bool = False, where=lambda key: key,
                 refiner_source: str | None = None):
        from diffusers import AutoPipelineForText2Image

        self.spec = spec
        self.model_id = spec.model  # what the profile names ("tiny" or a hub id)
        self.source = source  # what was actually loaded: hub id or local folder
        self.revision = spec.revision
        self.inpaint_source = inpaint_source
        self.refiner_source = refiner_source
        self.device = device
        self.dtype = dtype
        self.allow_pickle = allow_pickle
        self.where = where  # config key -> where it is, for messages
        self.offload = spec.offload if not device.startswith("cpu") else "none"
        if spec.offload != "none" and self.offload == "none":
            log.warning("offload: %s ignored on the CPU (the weights already live there)", spec.offload)
        started = time.perf_counter()
        # 1. Load: safetensors only unless pickle was allowed; offline honoured; T5 dropped if asked.
        self._load_kwargs = {**loading.hub_kwargs(spec.revision, offline, False), **loading.weights_kwargs(allow_pickle),
                             **dtype_kwargs(dtype)}
        if spec.safety_checker == "off":
            self._load_kwargs.update(safety_checker=None, requires_safety_checker=False)
        drop_t5 = {"text_encoder_3": None, "tokenizer_3": None} if getattr(spec, "text_encoder_3", "auto") is None \
            else {}
        with loading.quiet_loading():
            self.text2img = loading.load_guarded(source, lambda: AutoPipelineForText2Image.from_pretrained(
                source, **self._load_kwargs, **drop_t5))
        # 2. What it is: the family table says the rest (families.py).
        self.family = family_of(self.text2img)
        if drop_t5 and "text_encoder_3" not in self.family.encoders:
            raise ModelError(f"{source}: text_encoder_3: null is for Stable Diffusion 3 models, and this is "
                             f"{self.family.name} (check {where('diffusion.text_encoder_3')})")
        if refiner_source is not None and not self.family.refiner:
            raise ModelError(f"{source}: a refiner is an SDXL second stage, and this model is {self.family.name} "
                             f"(check {where('diffusion.refiner')})")
        # 3. The safety checker follows the model unless the config forces it.
        self.safety_checker = getattr(self.text2img, "safety_checker", None) is not None
        if spec.safety_checker == "on" and not self.safety_checker:
            raise ModelError(f"{source}: safety_checker is 'on' but this model has no safety checker "
                             "(set diffusion.safety_checker to auto or off)")
        self._base_scheduler = self.text2img.scheduler
        self._schedulers: dict[str, object] = {}  # friendly name -> scheduler
        self._img2img = self._inpaint = self._refiner = None
        # 4. Knobs act on the shared modules, so every pipeline made from this one gets them.
        #    LoRAs go in before the pipeline is placed (offload hooks wrap the final modules).
        if spec.vae_tiling:
            self.text2img.vae.enable_tiling()
        if spec.loras and importlib.util.find_spec("peft") is None:
            raise ModelError("LoRA weights in the profile need the peft package: pip install peft")
        self.loras = self._load_loras(self.text2img, spec.loras)
        from visionloop.models.speed import apply_speed

        self.speed = apply_speed(self)  # diffusion.vae (taesd), channels_last: speed.py
        self._configure(self.text2img)
        self.load_seconds = time.perf_counter() - started
        log.info("loaded %s (%s, %s) on %s in %.2fs", source, type(self.text2img).__name__, self.family.name,
                 device, self.load_seconds)

    # -- pipelines -----------------------------------------------------------------------------
    def _configure(self, pipe) -> None:
        """The setup a freshly loaded pipeline needs (the main one, a dedicated inpainting
        checkpoint, the refiner): attention slicing, placement, `torch.compile` of its denoiser."""
        if self.spec.attention_slicing:
            pipe.enable_attention_slicing()
        self._place(pipe)
        from visionloop.models.families import denoiser
        from visionloop.models.speed import compile_wanted

        if compile_wanted(self.spec, self.device):
            denoiser(pipe).compile()

    def _place(self, pipe) -> None:
        if self.offload == "model":
            pipe.enable_model_cpu_offload(device=self.device)
        elif self.offload == "sequential":
            pipe.enable_sequential_cpu_offload(device=self.device)
        else:
            pipe.to(self.device)

    def _from_pipe(self, cls_name: str):
        """The family's `cls_name` pipeline on the very same modules."""
        import diffusers

        # dtype must be passed: from_pipe casts the shared modules to it (fp32 by default)
        pipe = getattr(diffusers, cls_name).from_pipe(self.text2img, **dtype_kwargs(self.dtype))
        if self.offload != "none":
            self._place(pipe)
        return pipe

    @property
    def img2img(self):
        """Image-to-image on the same modules (made on first use, then kept)."""
        if self._img2img is None:
            self.family.require("img2img", "restyle")
            self._img2img = self._from_pipe(self.family.img2img)
        return self._img2img

    @property
    def inpaint(self):
        """Inpainting: from the same modules, or a dedicated checkpoint sharing text encoders + VAE."""
        if self._inpaint is None:
            self.family.require("inpaint", "edit")
            if self.inpaint_source is None:
                self._inpaint = self._from_pipe(self.family.inpaint)
            else:
                from diffusers import AutoPipelineForInpainting

                shared = {name: getattr(self.text2img, name) for name in SHARED_WITH_INPAINT
                          if getattr(self.text2img, name, None) is not None}
                self._inpaint = self._load_beside(self.inpaint_source, AutoPipelineForInpainting, shared)
        return self._inpaint

    @property
    def refiner(self):
        """The SDXL refiner (`diffusion.refiner`), sharing the second text encoder and the VAE; None without."""
        if self._refiner is None and self.refiner_source is not None:
            from diffusers import StableDiffusionXLImg2ImgPipeline

            shared = {"text_encoder_2": self.text2img.text_encoder_2, "vae": self.text2img.vae}
            self._refiner = self._load_beside(self.refiner_source, StableDiffusionXLImg2ImgPipeline, shared)
        return self._refiner

    def _load_beside(self, source: str, cls, shared: dict):
        # the profile's revision pins the main model, not this one
        kwargs = {k: v for k, v in self._load_kwargs.items() if k != "revision"}
        with loading.quiet_loading():
            pipe = loading.load_guarded(source, lambda: cls.from_pretrained(source, **kwargs, **shared))
        self._configure(pipe)
        return pipe

    def pipeline(self, mode: str):
        return {"text2img": lambda: self.text2img, "img2img": lambda: self.img2img,
                "inpaint": lambda: self.inpaint}[mode]()

    @property
    def default_size(self) -> tuple[int, int]:
        """The model's native size from its config: 512 for SD 1.5, 1024 for SDXL, SD3, FLUX."""
        size = native_size(self.text2img)
        return size, size

    @property
    def size_multiple(self) -> int:
        """What width and height must divide by: 8, or 16 for SD3 and FLUX."""
        return size_multiple(self.text2img)

    def scheduler(self, name: str | None) -> tuple[object, names.SchedulerChoice | None]:
        """The scheduler for `name` (None: the model's own), built once and kept; a scheduler of
        another noise schedule than the family's is refused, naming those that fit."""
        if not name:
            return self._base_scheduler, None
        choice = names.resolve_scheduler(name)
        self.family.check_scheduler(choice.name)
        if choice.name not in self._schedulers:
            self._schedulers[choice.name] = names.build_scheduler(choice, self._base_scheduler.config)
        return self._schedulers[choice.name], choice

    def describe(self) -> dict:
        """What a manifest records beside the model id: the family and the pipeline class."""
        return {"family": self.family.name, "pipeline": type(self.text2img).__name__,
                "text_encoders": [n for n in self.family.encoders if getattr(self.text2img, n, None) is not None]}

    # -- generation ----------------------------------------------------------------------------
    def generate(self, mode: str, *, prompt: str, negative_prompt: str | None, steps: int, guidance: float,
                 seeds: list[int], width: int, height: int, scheduler: str | None = None, image=None,
                 mask=None, strength: float | None = None, progress: bool = False, cancel=None,
                 loras=(), extra_kwargs: dict | None = None) -> Generation:
        """Run `mode` (`text2img`, `img2img` or `inpaint`), one pipeline call per seed.
        `extra_kwargs` go to the pipeline call as they are (e.g. `ip_adapter_image_embeds`).

        Each image is its own batch-of-one call with a CPU `torch.Generator` seeded with its
        seed: batched matmuls round differently from batch size 1, so only then does
        `draw P --seed S` give image S of any `--count` run bit for bit, on any device, from
        the image's own record alone. `loras`: this call's LoRAs (`LoraChoice`s) beside the profile's.
        """
        import numpy as np

        # 1. The pipeline, this call's LoRAs and the scheduler (schedulers are per pipeline object).
        multiple = self.size_multiple
        for side, value in (("width", width), ("height", height)):
            if value % multiple:
                raise InputError(f"{side}: {self.family.name} models need a multiple of {multiple}, got {value}")
        in_use = self.use_loras(loras)
        pipe = self.pipeline(mode)
        sched, choice = self.scheduler(scheduler)
        pipe.scheduler = sched
        # 2. The exact keyword arguments a raw diffusers call needs (the generator is per seed).
        notes = []
        if negative_prompt and not self.family.negative_prompt:
            notes.append(f"{self.family.label} ignores negative prompts; it was not used")
            negative_prompt = None
        kwargs = {"prompt": prompt, "negative_prompt": negative_prompt or None, "num_inference_steps": steps,
                  "guidance_scale": guidance, "output_type": "np"}
        if mode in ("text2img", "inpaint") or "width" in inspect.signature(pipe.__call__).parameters:
            kwargs.update(width=width, height=height)
        if image is not None:
            kwargs["image"] = image
        if mask is not None:
            kwargs["mask_image"] = mask
        if strength is not None:
            kwargs["strength"] = strength
        if cancel is not None:
            kwargs["callback_on_step_end"] = run.cancel_callback(cancel)
        kwargs.update(extra_kwargs or {})
        then, refined = None, None
        if mode == "text2img" and self.refiner is not None:  # SDXL: the base denoises the first part
            refined = {"model": self.refiner_source, "start": float(self.spec.refiner_start)}
            kwargs.update(denoising_end=refined["start"], output_type="latent")
            then = self._refine(kwargs, refined["start"], choice, (width, height))
        # 3. Denoise seed by seed; a cancel stops between images too.
        arrays, flagged, vae_float32, seconds = run.denoise(pipe, kwargs, seeds, width=width, height=height,
                                                        progress=progress, cancel=cancel, then=then)
        # 4. Per-image status: a black picture is never a silent success.
        status = run.statuses(arrays, flagged)
        images = pipe.numpy_to_pil(np.nan_to_num(np.stack(arrays), nan=0.0))
        about = self.describe()
        options = {"scheduler_name": choice.name if choice else None,
                   "scheduler_options": dict(choice.options) if choice else {}, **getattr(self, "speed", {}),
                   "vae_float32": vae_float32, "family": about["family"], "text_encoders": about["text_encoders"],
                   "refiner": refined}
        return Generation(images=images, status=status, scheduler=type(sched).__name__,
                          pipeline=type(pipe).__name__, seconds=seconds, nsfw_content_detected=flagged,
                          options=options, loras=in_use, notes=notes)

    def _refine(self, kwargs: dict, start: float, choice: names.SchedulerChoice | None, size: tuple[int, int]):
        """The refiner's stage: the last part of the steps on the base's latents, same generator."""
        refiner = self.refiner
        refiner.scheduler = names.build_scheduler(choice, refiner.scheduler.config) if choice else refiner.scheduler
        second = {k: kwargs[k] for k in ("prompt", "negative_prompt", "num_inference_steps", "guidance_scale")}
        second.update(denoising_start=start, output_type="np")
        if "callback_on_step_end" in kwargs:
            second["callback_on_step_end"] = kwargs["callback_on_step_end"]

        def then(latents, generator):
            refiner.set_progress_bar_config(disable=True)
            return run.call(refiner, second, generator, *size, image=latents)

        return then
