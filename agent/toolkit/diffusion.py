"""What draw, edit and restyle share: their common inputs, size and seed rules, and one
`generate()` that runs the shared Stable Diffusion backend and saves every image with its
full record (AUTOMATIC1111 `parameters` + the `visionloop` JSON chunk).

Every check that a user can fail runs before a model loads.
"""

from __future__ import annotations

import re
import secrets

from visionloop.errors import InputError, VisionloopError
from visionloop.images import ensure_output_dir, save_image
from visionloop.tools import Input, ToolResult

MAX_SEED = 2**63 - 1
MAX_COUNT = 16
MAX_PROMPT_CHARS = 2000


#: Every `data` key `generate` may set (the backend's scheduler options included): the start of
#: each Stable Diffusion tool's `Tool.data_keys`, to which it adds the keys of its `extra`. A key
#: added below goes here too (tests/test_workflow_returns.py checks).
DATA_KEYS = ("model", "model_id", "revision", "pipeline", "prompt", "negative_prompt", "steps", "guidance", "seed",
             "seeds", "count", "width", "height", "scheduler", "scheduler_name", "scheduler_options", "strength",
             "base_model", "loras", "safety_checker", "device", "dtype", "threads", "generate_seconds",
             "nsfw_content_detected", "status", "images", "notes", "vae", "vae_float32", "family",
             "text_encoders", "refiner")


def common_inputs(strength: float | None = None) -> list[Input]:
    """Inputs every Stable Diffusion tool takes; `None` means the profile's setting."""
    inputs = [
        Input("negative_prompt", "text", None, "what the picture should not show", flags=("--negative",),
              max_chars=MAX_PROMPT_CHARS),
        Input("width", "int", None, "width in pixels, a multiple of 8, of 16 for SD3 and FLUX (default: the "
                                    "profile's, else the model's)", min=8),
        Input("height", "int", None, "height in pixels, a multiple of 8, of 16 for SD3 and FLUX (default: the "
                                     "profile's, else the model's)", min=8),
        Input("size", "size", None, "width and height at once, e.g. 512x512"),
        Input("steps", "int", None, "denoising steps (default: the profile's)", min=1, max=500),
        Input("guidance", "float", None, "classifier-free guidance scale, CFG (default: the profile's)",
              min=0.0, max=50.0),
        Input("seed", "int", None, "random seed; drawn and recorded when not given", min=0, max=MAX_SEED),
        Input("scheduler", "text", None, "sampler: euler, euler_a, dpm++_2m, dpm++_2m_karras, ddim, lcm, tcd, ... "
                                         "for SD 1.x/2.x and SDXL; flow_euler, flow_heun for SD3 and FLUX "
                                         "(default: the model's own)"),
        Input("count", "int", 1, "how many images (seeds seed, seed+1, ...)", min=1, max=MAX_COUNT),
        Input("lora", "text", None, "a LoRA to draw with, NAME[:SCALE] (a trained LoRA's name or a .safetensors "
                                    "path; scale default 1.0); repeatable", multiple=True, max_chars=4096),
    ]
    if strength is not None:
        inputs.insert(0, Input("strength", "float", strength, "how much to change: 0 keeps the image, 1 redraws it",
                               min=0.0, max=1.0))
    return inputs


def clean_prompt(text: str | None, what: str = "prompt") -> str:
    """Prompt text as data: control characters removed, whitespace collapsed, length capped."""
    text = re.sub(r"[\x00-\x1f\x7f]+", " ", str(text or ""))
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) > MAX_PROMPT_CHARS:
        raise InputError(f"{what}: too long ({len(text)} characters; at most {MAX_PROMPT_CHARS})")
    return text


def pick_size(ctx, width, height, size, fit: tuple[int, int] | None = None) -> tuple[int, int]:
    """The output size: `--size` or `--width/--height`, else the profile's, else `fit` (an input
    image's size scaled to the profile's longer side), else the model's own. Each side must be a
    multiple of 8 and within the profile's maximum."""
    spec = ctx.config.active.diffusion
    if size is not None:
        if (width is not None and width != size[0]) or (height is not None and height != size[1]):
            raise InputError(f"size: {size[0]}x{size[1]} disagrees with --width/--height; give one or the other")
        width, height = size
    if fit is not None and width is None and height is None:
        longest = max(spec.width or 0, spec.height or 0) or max(ctx.models.diffusion().default_size)
        scale = min(1.0, longest / max(fit))
        loaded = ctx.models.loaded().get("diffusion")  # SD3 and FLUX sizes divide by 16
        step = max(8, int(getattr(loaded, "size_multiple", 8)))
        width = max(step, int(fit[0] * scale) // step * step)
        height = max(step, int(fit[1] * scale) // step * step)
    width = width if width is not None else spec.width
    height = height if height is not None else spec.height
    if width is None or height is None:
        native = ctx.models.diffusion().default_size
        width, height = width or native[0], height or native[1]
    for name, value in (("width", width), ("height", height)):
        problem = side_problem(ctx.config, name, value)
        if problem:  # named as the user gave it: `--size 0x0` is about --size
            raise InputError(f"size: {name} {problem}" if size is not None else f"{name}: {problem}")
    return int(width), int(height)


def side_problem(config, name: str, value: int) -> str | None:
    """What is wrong with `value` as the `name` side ("width"/"height") of an image in the
    active profile, or None: a multiple of 8 (the VAE halves it three times), at most the
    configured maximum. Workflow validation applies the same rule to literal sizes."""
    limit = getattr(config.active.diffusion, f"max_{name}")
    if value < 8:  # 0 or negative is not "not a multiple of 8"
        return f"must be at least 8, got {value}"
    if value % 8:
        return f"must be a multiple of 8, got {value}"
    if value > limit:
        return (f"{value} is above the configured maximum {limit} "
                f"(profiles.{config.profile}.diffusion.max_{name} in the config)")
    return None


def pick_loras(values) -> list:
    """`--lora NAME[:SCALE]` values resolved to files (hashed) before any model loads."""
    from visionloop.models.training.store import resolve_loras

    return resolve_loras(values)


def pick_seeds(seed: int | None, count: int) -> list[int]:
    """`count` seeds from `seed` (drawn at random when None), each image its own."""
    if seed is None:
        seed = secrets.randbelow(2**32)
    if seed + count - 1 > MAX_SEED:
        raise InputError(f"seed: must be at most {MAX_SEED - count + 1} with --count {count}")
    return [int(seed) + i for i in range(count)]


def check_settings(ctx, steps, guidance, strength=None) -> tuple[int, float]:
    """Steps and guidance with the profile's defaults; strength must leave a step to run."""
    spec = ctx.config.active.diffusion
    steps = spec.steps if steps is None else int(steps)
    guidance = spec.guidance if guidance is None else float(guidance)
    if strength is not None and int(steps * strength) < 1:
        raise InputError(f"strength: {strength:g} with {steps} steps runs no denoising step "
                         "(raise --strength or --steps)")
    ensure_output_dir(ctx.out_dir)
    return steps, guidance


def generate(ctx, tool: str, mode: str, *, prompt: str, negative_prompt: str | None, steps: int,
             guidance: float, seeds: list[int], width: int, height: int, scheduler: str | None,
             image=None, mask=None, strength: float | None = None, extra: dict | None = None,
             finish=None, loras=(), pipeline_kwargs: dict | None = None) -> ToolResult:
    """Run the shared backend, save each good image with its record, build the result.

    `finish(pil_image) -> pil_image` post-processes each image before saving (edit restores
    the unmasked pixels). `extra` adds tool-specific fields to `data` and to each record.
    `loras`: this call's LoRAs (`pick_loras`), drawn with beside the profile's.
    `pipeline_kwargs`: more arguments for the pipeline call (restyle's `ip_adapter_image_embeds`).
    """
    scheduler = scheduler or ctx.config.active.diffusion.scheduler  # None: the model's own
    if scheduler:  # an unknown name fails here, before the model loads
        from visionloop.models.schedulers import resolve_scheduler

        resolve_scheduler(scheduler)
    from visionloop.models.threads import pin

    threads = pin(ctx.config)  # this thread's intra-op count: the configured one, so reruns agree
    backend = ctx.models.diffusion()
    gen = backend.generate(mode, prompt=prompt, negative_prompt=negative_prompt, steps=steps, guidance=guidance,
                           seeds=seeds, width=width, height=height, scheduler=scheduler, image=image, mask=mask,
                           strength=strength, progress=ctx.progress, cancel=ctx.cancel, loras=loras,
                           **({"extra_kwargs": pipeline_kwargs} if pipeline_kwargs else {}))
    from visionloop.models.device import dtype_name

    data = {"model": backend.source, "model_id": backend.model_id, "revision": backend.revision,
            "pipeline": gen.pipeline, "prompt": prompt, "negative_prompt": negative_prompt or "",
            "steps": steps, "guidance": guidance, "seed": seeds[0], "seeds": seeds, "count": len(seeds),
            "width": width, "height": height, "scheduler": gen.scheduler, **gen.options}
    if strength is not None:
        data["strength"] = strength
    if mode == "inpaint" and backend.inpaint_source:
        data["model"] = backend.inpaint_source  # the UNet that painted
        data["base_model"] = backend.source  # text encoder and VAE
    data.update(extra or {})
    dedicated = mode == "inpaint" and backend.inpaint_source  # its own UNet carries no LoRA
    if dedicated and loras:
        data.setdefault("notes", []).append("LoRAs apply to the main model's UNet, not to the dedicated "
                                            "inpainting checkpoint that painted this")
    data.update({"loras": [] if dedicated else gen.loras, "safety_checker": backend.safety_checker, "device": backend.device,
                 "dtype": dtype_name(backend.dtype), "threads": threads, "generate_seconds": round(gen.seconds, 4),
                 "nsfw_content_detected": gen.nsfw_content_detected, "status": gen.status})
    notes = list(data.pop("notes", [])) + list(getattr(gen, "notes", []))
    notes += _truncation_notes(backend.pipeline(mode), prompt, negative_prompt)
    from visionloop.models.schedulers import few_step_note

    notes += [n for n in [few_step_note(data.get("scheduler_name"), steps, guidance, data.get("loras") or (),
                                        f"{data.get('model_id')} {data.get('model')}")] if n]
    if data.get("vae_float32"):
        notes.append(f"the VAE overflowed in {data['dtype']} and decoded again in float32 "
                     f"(seeds {', '.join(map(str, data['vae_float32']))})")
    paths = []
    for i, (picture, status, seed) in enumerate(zip(gen.images, gen.status, seeds)):
        if status != "ok":
            notes.append(_status_note(status, i, seed))
            continue
        if finish is not None:
            picture = finish(picture)
        record = {"tool": tool, **data, "seed": seed, "index": i}
        stem = f"{tool}-{prompt[:40]}-{seed}"
        paths.append(str(save_image(picture, ctx.out_dir, stem, record)))
    data["images"] = paths
    data["notes"] = notes
    if not paths:
        raise VisionloopError("; ".join(notes) + "; nothing was saved")
    return ToolResult(tool=tool, text="", images=paths, data=data)


def _truncation_notes(pipe, prompt: str, negative_prompt: str | None) -> list[str]:
    """CLIP text encoders read a fixed number of tokens (77 for SD 1.5) and diffusers drops the
    rest with a log line nobody sees: say so in the result instead."""
    tokenizer = getattr(pipe, "tokenizer", None)
    if tokenizer is None:
        return []
    limit = tokenizer.model_max_length
    notes = []
    for name, text in (("prompt", prompt), ("negative_prompt", negative_prompt)):
        count = len(tokenizer(text).input_ids) if text else 0
        if count > limit:
            notes.append(f"{name} is {count} tokens; the text encoder reads the first {limit}, the rest was ignored")
    return notes


def _status_note(status: str, index: int, seed: int) -> str:
    which = f"image {index + 1} (seed {seed})"
    if status == "nsfw":
        return (f"{which} was flagged by the safety checker and not saved "
                "(set diffusion.safety_checker: off in the config to turn the checker off)")
    if status == "nan":
        return (f"{which} came out as NaN (numerical overflow, usually an fp16 VAE) and was not saved: "
                "try dtype: float32 or an fp16-safe VAE")
    return (f"{which} came out all black (numerical overflow, usually an fp16 VAE) and was not saved: "
            "try dtype: float32 or an fp16-safe VAE")
