"""Schedulers (samplers) by friendly name, mapped to diffusers classes.

The names follow what users know from AUTOMATIC1111 and ComfyUI (`euler_a`, `dpm++_2m_karras`);
a diffusers class name (`EulerDiscreteScheduler`, as recorded in every result) is accepted too,
so a recorded call can be replayed. A scheduler is always built from the loaded model's own
scheduler config (`from_config`), which carries the model's beta schedule and prediction type.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from visionloop.errors import InputError, ModelError

#: friendly name -> (diffusers class, config overrides)
SCHEDULERS: dict[str, tuple[str, dict]] = {
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}),
    "heun": ("HeunDiscreteScheduler", {}),
    "dpm++_2m": ("DPMSolverMultistepScheduler", {}),
    "dpm++_2m_karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
    "dpm++_2m_sde": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}),
    "dpm++_2m_sde_karras": ("DPMSolverMultistepScheduler",
                            {"algorithm_type": "sde-dpmsolver++", "use_karras_sigmas": True}),
    "dpm++_sde": ("DPMSolverSinglestepScheduler", {}),
    "dpm2": ("KDPM2DiscreteScheduler", {}),
    "dpm2_a": ("KDPM2AncestralDiscreteScheduler", {}),
    "lms": ("LMSDiscreteScheduler", {}),  # needs scipy
    "ddim": ("DDIMScheduler", {}),
    "ddpm": ("DDPMScheduler", {}),
    "pndm": ("PNDMScheduler", {}),
    "unipc": ("UniPCMultistepScheduler", {}),
    "lcm": ("LCMScheduler", {}),  # for LCM-distilled weights or an LCM LoRA
    "tcd": ("TCDScheduler", {}),  # for a TCD LoRA (or an LCM one)
}

#: Flow-matching schedulers (SD3/3.5, FLUX.1), apart: the ones above do not fit those models,
#: nor these the ones above. families.py says which family takes which.
FLOW_SCHEDULERS: dict[str, tuple[str, dict]] = {
    "flow_euler": ("FlowMatchEulerDiscreteScheduler", {}),
    "flow_heun": ("FlowMatchHeunDiscreteScheduler", {}),  # SD3 only (FLUX passes its own sigmas)
}

#: Few-step schedulers: 4-8 steps with their LoRA (`loras:`), and guidance about 1.
FEW_STEP = ("lcm", "tcd")


def few_step_note(name: str | None, steps: int, guidance: float, loras=(), model: str = "") -> str | None:
    """A note when a few-step scheduler runs with settings it was not made for, or None.
    `loras` (the `data["loras"]` records) and `model` tell whether a few-step LoRA or a
    distilled model is there at all."""
    if not name or str(name).strip().lower() not in FEW_STEP:
        return None
    distilled = ("lcm", "tcd", "turbo", "lightning", "hyper")
    named = [str(model)] + [str(r.get("path") or r.get("name") or "") for r in loras if isinstance(r, dict)]
    if not any(word in n.lower() for n in named for word in distilled):
        return (f"scheduler {name} draws in a few steps only with a distilled model or its LoRA (e.g. "
                "loras: [{path: latent-consistency/lcm-lora-sdv1-5}]); without one the picture stays unfinished")
    if guidance > 2.0:
        return (f"scheduler {name} is made for guidance about 1 (got {guidance:g}); "
                "high guidance burns the picture with a few-step LoRA: try --guidance 1")
    if steps > 12:
        return f"scheduler {name} is made for 4-8 steps (got {steps}); more steps are slower and rarely better"
    return None

@dataclass(frozen=True)
class SchedulerChoice:
    """What a name resolved to: the friendly `name`, the diffusers `cls` and the `options`
    given to `from_config` (recorded in results as `scheduler_options`)."""

    name: str
    cls: str
    options: dict = field(default_factory=dict)


def resolve_scheduler(name: str) -> SchedulerChoice:
    """Friendly name or diffusers class name (case-insensitive) -> `SchedulerChoice`."""
    key = str(name).strip().lower().replace("-", "_").replace(" ", "_")
    key = key.replace("dpmpp", "dpm++")
    every = {**SCHEDULERS, **FLOW_SCHEDULERS}
    if key in every:
        cls, options = every[key]
        return SchedulerChoice(key, cls, dict(options))
    for friendly, (cls, options) in every.items():
        if cls.lower() == str(name).strip().lower() and not options:
            return SchedulerChoice(friendly, cls, {})
    raise InputError(f"scheduler: unknown scheduler {name!r} (known: {', '.join(SCHEDULERS)})")  # flow_*: SD3, FLUX


def build_scheduler(choice: SchedulerChoice, base_config):
    """A fresh scheduler of `choice`'s class from the model's scheduler config."""
    import diffusers

    cls = getattr(diffusers, choice.cls, None)
    if cls is None:
        raise ModelError(f"scheduler {choice.name!r}: this diffusers version has no {choice.cls}")
    try:
        return cls.from_config(base_config, **choice.options)
    except ImportError as exc:  # e.g. LMS needs scipy
        raise ModelError(f"scheduler {choice.name!r} needs a package that is not installed: {exc}") from None
