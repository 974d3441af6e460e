"""Generation metadata in PNG text chunks: the AUTOMATIC1111 `parameters` layout (what other
tools read) and the `visionloop` JSON record; `read_metadata` reads both back."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

#: scheduler (friendly name, as `visionloop.models.schedulers` knows them) -> the sampler's name in
#: AUTOMATIC1111 (what readers of the PNG `parameters` chunk recognise).
A1111_NAMES: dict[str, str] = {
    "euler": "Euler", "euler_a": "Euler a", "heun": "Heun", "dpm++_2m": "DPM++ 2M",
    "dpm++_2m_karras": "DPM++ 2M Karras", "dpm++_2m_sde": "DPM++ 2M SDE",
    "dpm++_2m_sde_karras": "DPM++ 2M SDE Karras", "dpm++_sde": "DPM++ SDE", "dpm2": "DPM2",
    "dpm2_a": "DPM2 a", "lms": "LMS", "ddim": "DDIM", "pndm": "PLMS", "unipc": "UniPC", "lcm": "LCM",
}
#: a model's own scheduler, recorded by its diffusers class (default options) -> A1111's name
A1111_CLASSES: dict[str, str] = {
    "EulerDiscreteScheduler": "Euler", "EulerAncestralDiscreteScheduler": "Euler a",
    "HeunDiscreteScheduler": "Heun", "DPMSolverMultistepScheduler": "DPM++ 2M",
    "DPMSolverSinglestepScheduler": "DPM++ SDE", "KDPM2DiscreteScheduler": "DPM2",
    "KDPM2AncestralDiscreteScheduler": "DPM2 a", "LMSDiscreteScheduler": "LMS", "DDIMScheduler": "DDIM",
    "PNDMScheduler": "PLMS", "UniPCMultistepScheduler": "UniPC", "LCMScheduler": "LCM",
}


def a1111_sampler(cls: str | None, name: str | None = None) -> str | None:
    """The AUTOMATIC1111 sampler name for a run: by the friendly `name` it was asked for, else
    by the diffusers class `cls` (the model's own scheduler); the class name when A1111 has none."""
    if name and name in A1111_NAMES:
        return A1111_NAMES[name]
    if not cls:
        return None
    return A1111_CLASSES.get(str(cls), str(cls))


def a1111_parameters(record: dict) -> str:
    """The AUTOMATIC1111 `parameters` text for a generation record."""
    lines = [str(record.get("prompt", ""))]
    if record.get("negative_prompt"):
        lines.append(f"Negative prompt: {record['negative_prompt']}")
    fields = [("Steps", record.get("steps")), ("Sampler", a1111_sampler(record.get("scheduler"), record.get("scheduler_name"))),
              ("CFG scale", record.get("guidance")), ("Seed", record.get("seed")),
              ("Size", f"{record['width']}x{record['height']}" if record.get("width") else None),
              ("Denoising strength", record.get("strength")), ("Model", record.get("model"))]
    lines.append(", ".join(f"{k}: {v}" for k, v in fields if v is not None))
    return "\n".join(lines)


def read_metadata(path: str | os.PathLike) -> dict:
    """What an image carries: `parameters` (text) and `visionloop` (dict), when present."""
    from visionloop.errors import ImageError
    from visionloop.images.load import DECODE_ERRORS, decode_problem, peek

    p = Path(path)
    with peek(p) as img:
        try:  # a PNG's `text` reads on to the end of the file: a truncated one fails here
            text = dict(getattr(img, "text", {}) or {})
        except (*DECODE_ERRORS, ValueError) as exc:
            raise ImageError(p, decode_problem(exc)) from None
        size = img.size
        fmt = img.format
    out: dict[str, Any] = {"file": str(p), "format": fmt, "size": f"{size[0]}x{size[1]}"}
    if "parameters" in text:
        out["parameters"] = text["parameters"]
    if "visionloop" in text:
        try:
            out["visionloop"] = json.loads(text["visionloop"])
        except json.JSONDecodeError:
            out["visionloop"] = text["visionloop"]
    return out
