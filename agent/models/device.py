"""Device and dtype choice: `auto` picks cuda, then mps, then cpu; fp16/bf16 on GPUs, fp32 on CPU."""

from __future__ import annotations

import logging

from visionloop.errors import ModelError

log = logging.getLogger(__name__)


def resolve_device(name: str = "auto") -> str:
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"device {name!r} was asked for, but this torch build sees no CUDA GPU "
                         "(set device: auto or cpu in the config)")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ModelError("device 'mps' was asked for, but MPS is not available (set device: auto or cpu)")
    return name


def resolve_dtype(name: str, device: str):
    import torch

    if name == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device == "mps":
            return torch.float16
        return torch.float32
    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]


def dtype_name(dtype) -> str:
    return str(dtype).replace("torch.", "")
