"""The Stable Diffusion backend: one set of weights shared by draw, restyle and edit.

`AutoPipelineForText2Image.from_pretrained` loads the model (SD 1.5, SDXL, ... : the class
follows the model's `model_index.json`); image-to-image and inpainting pipelines are made from
it with `from_pipe`, which reuses the very same modules, so the three tools hold one copy of
the weights. A dedicated inpainting checkpoint, when the profile names one, gets its own UNet
but shares the text encoder(s) and the VAE (the profile's LoRAs apply to the main UNet only).

Config knobs that reach the pipeline: dtype, device, attention slicing, VAE tiling, CPU
offload, `torch.compile`, LoRAs with scales, the safety checker. Results never hide a black
picture: images flagged by the safety checker, and NaN or all-black images (fp16 VAE
overflow), are reported per image.
"""

from __future__ import annotations

import gc
import importlib.util
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from visionloop.errors import Cancelled, ModelError, VisionloopError
from visionloop.models.loading import hub_kwargs, load_guarded, lora_target, quiet_loading, weights_kwargs
from visionloop.models.schedulers import SchedulerChoice, build_scheduler, resolve_scheduler

log = logging.getLogger(__name__)

#: Components a dedicated inpainting checkpoint borrows from the main model.
SHARED_WITH_INPAINT = ("text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "vae",
                       "safety_checker", "feature_extractor")


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


def _sha256(path) -> str | None:
    from visionloop.images import sha256_file

    try:
        return sha256_file(path)
    except OSError:
        return None


def dtype_kwargs(dtype) -> dict:
    """`dtype=` on diffusers that have it, else the older `torch_dtype=`."""
    try:
        from diffusers.utils.deprecation_utils import _resolve_dtype  # noqa: F401  (present since `dtype` exists)

        return {"dtype": dtype}
    except ImportError:
        return {"torch_dtype": dtype}


def _cancel_callback(cancel):
    """`callback_on_step_end` that stops the denoising loop at the next step when asked."""

    def callback(pipe, step, timestep, callback_kwargs):
        if cancel.is_set():
            raise Cancelled("cancelled")
        return callback_kwargs

    return callback


class DiffusionBackend:
    """Holds the loaded pipelines. `generate()` runs any of the three modes, one call per seed."""

    kind = "diffusion"

    def __init__(self, spec, source: str, device: str, dtype, inpaint_source: str | None = None,
                 offline: bool = False, allow_pickle: bool = False, where=lambda key: key):
        from diffusers import AutoPipelineForText2Image

        self.spec = spec
        self.model_id = spec.model  # what the profile names ("tiny" or a hub id)
        self.source = source  # what was actually loaded: hub id or local folder
        self.revision = spec.revision
        self.inpaint_source = inpaint_source
        self.device = device
        self.dtype = dtype
        self.allow_pickle = allow_pickle
        self.where = where  # config key -> where it is, for messages
        self.offload = spec.offload if not device.startswith("cpu") else "none"
        if spec.offload != "none" and self.offload == "none":
            log.warning("offload: %s ignored on the CPU (the weights already live there)", spec.offload)
        started = time.perf_counter()
        # 1. Load: safetensors only unless pickle was allowed; offline honoured.
        self._load_kwargs = {**hub_kwargs(spec.revision, offline, False), **weights_kwargs(allow_pickle),
                             **dtype_kwargs(dtype)}
        if spec.safety_checker == "off":
            self._load_kwargs.update(safety_checker=None, requires_safety_checker=False)
        with quiet_loading():
            self.text2img = load_guarded(source, lambda: AutoPipelineForText2Image.from_pretrained(
                source, **self._load_kwargs))
        # 2. The safety checker follows the model unless the config forces it.
        self.safety_checker = getattr(self.text2img, "safety_checker", None) is not None
        if spec.safety_checker == "on" and not self.safety_checker:
            raise ModelError(f"{source}: safety_checker is 'on' but this model has no safety checker "
                             "(set diffusion.safety_checker to auto or off)")
        self._base_scheduler = self.text2img.scheduler
        self._schedulers: dict[str, object] = {}  # friendly name -> scheduler
        self._img2img = None
        self._inpaint = None
        # 3. Knobs act on the shared modules, so every pipeline made from this one gets them.
        #    LoRAs go in before the pipeline is placed (offload hooks wrap the final modules).
        if spec.vae_tiling:
            self.text2img.vae.enable_tiling()
        self.loras = self._load_loras(self.text2img, spec.loras)
        from visionloop.models.speed import apply_speed

        self.speed = apply_speed(self)  # diffusion.vae (taesd), channels_last: speed.py
        self._configure(self.text2img)
        self.load_seconds = time.perf_counter() - started
        log.info("loaded %s (%s) on %s in %.2fs", source, type(self.text2img).__name__, device, self.load_seconds)

    # -- pipelines -----------------------------------------------------------------------------
    def _configure(self, pipe) -> None:
        """The setup a freshly loaded pipeline needs (the main one, or a dedicated inpainting
        checkpoint): attention slicing, placement (device or offload hooks), `torch.compile`."""
        if self.spec.attention_slicing:
            pipe.enable_attention_slicing()
        self._place(pipe)
        from visionloop.models.speed import compile_wanted

        if compile_wanted(self.spec, self.device):
            pipe.unet.compile()

    def _place(self, pipe) -> None:
        if self.offload == "model":
            pipe.enable_model_cpu_offload(device=self.device)
        elif self.offload == "sequential":
            pipe.enable_sequential_cpu_offload(device=self.device)
        else:
            pipe.to(self.device)

    @property
    def img2img(self):
        """Image-to-image on the same modules (made on first use, then kept)."""
        if self._img2img is None:
            from diffusers import AutoPipelineForImage2Image

            # dtype must be passed: from_pipe casts the shared modules to it (fp32 by default)
            self._img2img = AutoPipelineForImage2Image.from_pipe(self.text2img, **dtype_kwargs(self.dtype))
            if self.offload != "none":
                self._place(self._img2img)
        return self._img2img

    @property
    def inpaint(self):
        """Inpainting: from the same modules, or a dedicated checkpoint sharing text encoder + VAE."""
        if self._inpaint is None:
            from diffusers import AutoPipelineForInpainting

            if self.inpaint_source is None:
                self._inpaint = AutoPipelineForInpainting.from_pipe(self.text2img, **dtype_kwargs(self.dtype))
                if self.offload != "none":
                    self._place(self._inpaint)
            else:
                shared = {name: getattr(self.text2img, name) for name in SHARED_WITH_INPAINT
                          if getattr(self.text2img, name, None) is not None}
                source = self.inpaint_source
                # the profile's revision pins the main model, not this one
                kwargs = {k: v for k, v in self._load_kwargs.items() if k != "revision"}
                with quiet_loading():
                    self._inpaint = load_guarded(source, lambda: AutoPipelineForInpainting.from_pretrained(
                        source, **kwargs, **shared))
                self._configure(self._inpaint)
        return self._inpaint

    def pipeline(self, mode: str):
        return {"text2img": lambda: self.text2img, "img2img": lambda: self.img2img,
                "inpaint": lambda: self.inpaint}[mode]()

    @property
    def default_size(self) -> tuple[int, int]:
        """The model's native size: UNet sample size x VAE scale factor (512 for SD 1.5)."""
        pipe = self.text2img
        size = int(pipe.unet.config.sample_size) * int(getattr(pipe, "vae_scale_factor", 8))
        return size, size

    def scheduler(self, name: str | None) -> tuple[object, SchedulerChoice | None]:
        """The scheduler for `name` (None: the model's own), built once and kept."""
        if not name:
            return self._base_scheduler, None
        choice = resolve_scheduler(name)
        if choice.name not in self._schedulers:
            self._schedulers[choice.name] = build_scheduler(choice, self._base_scheduler.config)
        return self._schedulers[choice.name], choice

    # -- LoRA ----------------------------------------------------------------------------------
    def _load_loras(self, pipe, loras) -> list[dict]:
        """The profile's LoRAs (`loras:`; a path, a hub id, or the name of a trained LoRA),
        loaded once as adapters; each recorded with its file's sha256 where it is on disk."""
        from visionloop.models.training.store import NAME, check_family, loras_dir, weights_in

        self._call_adapters: dict[str, object] = {}  # adapter name -> LoraChoice, per-call LoRAs
        if not loras:
            return []
        if importlib.util.find_spec("peft") is None:
            raise ModelError("LoRA weights in the profile need the peft package: pip install peft")
        names, scales, record = [], [], []
        for i, lora in enumerate(loras):
            name = lora.name or f"lora{i}"
            kwargs = {"adapter_name": name, **weights_kwargs(self.allow_pickle)}
            check = f"(check {self.where(f'diffusion.loras[{i}].path')})"
            trained = loras_dir() / lora.path if NAME.fullmatch(lora.path) else None
            if trained is not None and trained.is_dir() and weights_in(trained) is not None:
                file = weights_in(trained)  # the name of a LoRA made by `visionloop train`
                target, weight_name = str(file.parent), file.name
            else:
                target, weight_name = lora_target(lora.path, self.allow_pickle, check)
            if weight_name:
                kwargs["weight_name"] = weight_name
            file = Path(target) / weight_name if weight_name else weights_in(Path(target)) if Path(target).is_dir() \
                else None
            if file is not None and file.suffix == ".safetensors":
                check_family(file, pipe.unet, lora.path, self.model_id, check)
            load_guarded(lora.path, lambda: pipe.load_lora_weights(target, **kwargs))
            names.append(name)
            scales.append(float(lora.scale))
            record.append({"path": lora.path, "name": name, "scale": float(lora.scale),
                           "sha256": _sha256(file) if file is not None else None})
        pipe.set_adapters(names, adapter_weights=scales)
        return record

    def use_loras(self, choices) -> list[dict]:
        """Put this call's LoRAs (`--lora`, resolved `LoraChoice`s) on the shared UNet beside the
        profile's, each at its scale; LoRAs of earlier calls that this one does not use are
        removed (so a call without `--lora` draws exactly what the profile alone draws). A LoRA
        trained on another family of base model is refused before it is loaded. Returns the
        record of every LoRA in use: name, path, sha256, scale."""
        pipe = self.text2img
        wanted = {f"call_{c.sha256[:16]}": c for c in choices}
        stale = [a for a in self._call_adapters if a not in wanted]
        if stale:
            pipe.delete_adapters(stale)
            for adapter in stale:
                del self._call_adapters[adapter]
        if wanted and importlib.util.find_spec("peft") is None:
            raise ModelError("--lora needs the peft package: pip install peft")
        for adapter, choice in wanted.items():
            if adapter in self._call_adapters:
                continue
            from visionloop.models.training.store import check_family

            check_family(choice.path, pipe.unet, f"lora {choice.given}", self.model_id)
            file = Path(choice.path)
            load_guarded(choice.path, lambda: pipe.load_lora_weights(
                str(file.parent), weight_name=file.name, adapter_name=adapter, use_safetensors=True))
            self._call_adapters[adapter] = choice
        names = [r["name"] for r in self.loras] + list(wanted)
        if names:
            pipe.set_adapters(names, adapter_weights=[r["scale"] for r in self.loras] +
                              [c.scale for c in wanted.values()])
        return [*self.loras, *(c.record() for c in wanted.values())]

    # -- generation ----------------------------------------------------------------------------
    def generate(self, mode: str, *, prompt: str, negative_prompt: str | None, steps: int, guidance: float,
                 seeds: list[int], width: int, height: int, scheduler: str | None = None, image=None,
                 mask=None, strength: float | None = None, progress: bool = False, cancel=None,
                 loras=()) -> Generation:
        """Run `mode` (`text2img`, `img2img` or `inpaint`), one pipeline call per seed.

        Each image is its own batch-of-one call with a CPU `torch.Generator` seeded with its
        seed: batched matmuls round differently from batch size 1, so only then does
        `draw P --seed S` give image S of any `--count` run bit for bit, on any device, from
        the image's own record alone. `loras`: this call's LoRAs (`LoraChoice`s) beside the profile's.
        """
        import numpy as np
        import torch

        # 1. The pipeline, this call's LoRAs and the scheduler (schedulers are per pipeline object).
        in_use = self.use_loras(loras)
        pipe = self.pipeline(mode)
        sched, choice = self.scheduler(scheduler)
        pipe.scheduler = sched
        # 2. The exact keyword arguments a raw diffusers call needs (the generator is per seed).
        kwargs = dict(prompt=prompt, negative_prompt=negative_prompt or None, num_inference_steps=steps,
                      guidance_scale=guidance, output_type="np")
        if mode in ("text2img", "inpaint"):
            kwargs.update(width=width, height=height)
        if image is not None:
            kwargs["image"] = image
        if mask is not None:
            kwargs["mask_image"] = mask
        if strength is not None:
            kwargs["strength"] = strength
        if cancel is not None:
            kwargs["callback_on_step_end"] = _cancel_callback(cancel)
        # 3. Denoise seed by seed; a cancel stops between images too.
        started = time.perf_counter()
        from visionloop.models.speed import vae_guard

        arrays, flagged, vae_float32 = [], [], []
        for i, seed in enumerate(seeds):
            if cancel is not None and cancel.is_set():
                raise Cancelled("cancelled")
            desc = f"image {i + 1}/{len(seeds)}" if len(seeds) > 1 else None
            pipe.set_progress_bar_config(disable=not progress, leave=False, desc=desc)
            with vae_guard(pipe) as retried:  # an overflowing half-precision VAE decodes again in fp32
                out = self._call(pipe, kwargs, torch.Generator("cpu").manual_seed(int(seed)), width, height)
            if retried:
                vae_float32.append(int(seed))
            arrays.extend(out.images)
            # SDXL pipelines have no checker at all: None
            flags = getattr(out, "nsfw_content_detected", None)
            flagged = None if flags is None or flagged is None else flagged + [bool(f) for f in flags]
        seconds = time.perf_counter() - started
        # 4. Per-image status: a black picture is never a silent success.
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
        images = pipe.numpy_to_pil(np.nan_to_num(np.stack(arrays), nan=0.0))
        return Generation(images=images, status=status, scheduler=type(sched).__name__,
                          pipeline=type(pipe).__name__, seconds=seconds, nsfw_content_detected=flagged,
                          options={"scheduler_name": choice.name if choice else None,
                                   "scheduler_options": dict(choice.options) if choice else {},
                                   **getattr(self, "speed", {}), "vae_float32": vae_float32}, loras=in_use)

    @staticmethod
    def _call(pipe, kwargs: dict, generator, width: int, height: int):
        """One pipeline call; out of memory becomes a message and the process stays usable."""
        import torch

        try:
            with torch.inference_mode():
                return pipe(**kwargs, generator=generator)
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
