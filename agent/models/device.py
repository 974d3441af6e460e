"""Device and dtype choice: `auto` picks cuda, then mps, then cpu.

`dtype: auto` is chosen per model (`kind`) and device: on CUDA bf16 where the GPU supports it,
else fp16; fp16 on MPS; on a CPU the diffusion models run in bf16 when the CPU has AMX tiles
(`amx_bf16`, read at run time from the CPU's flags), fp32 otherwise. AVX512-BF16 alone is not
enough: measured on such a CPU (benchmarks/full_size.py, 2 cores, SD 1.5 UNet at 256x256), a bf16
step took 1.23x the fp32 one (oneDNN's bf16 convolutions are slower there), while AMX machines
run it in about 0.4x. The vision model stays fp32 on a CPU (it is quantized instead, see
`vision.quantize`).
"""

from __future__ import annotations

import functools
import logging

from visionloop.errors import ModelError

log = logging.getLogger(__name__)

#: CPU flags (as /proc/cpuinfo names them) that make bf16 drawing faster than fp32: AMX only
#: (AVX512-BF16 without AMX measured slower than fp32, see above).
BF16_FLAGS = ("amx_bf16",)
DTYPE_NAMES = ("float32", "float16", "bfloat16")


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


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux: /proc/cpuinfo; elsewhere torch's capability name,
    e.g. `AVX512`, lower-cased, which says nothing of bf16)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    try:
        import torch

        return frozenset({str(torch.backends.cpu.get_cpu_capability()).lower()})
    except Exception:  # noqa: BLE001  (an old torch without the API)
        return frozenset()


def cpu_has_bf16(flags=None) -> bool:
    """Does this CPU draw faster in bf16 (AMX tiles)? `flags` injects a flag set."""
    flags = cpu_flags() if flags is None else flags
    return any(flag in flags for flag in BF16_FLAGS)


def resolve_dtype(name: str, device: str, kind: str = "vision", flags=None, cuda_bf16=None):
    """The torch dtype for `name` (`auto` or a dtype name) on `device` for a `kind` of model
    (`vision` or `diffusion`). `flags` (CPU flags) and `cuda_bf16` inject what would otherwise
    be read from the machine (tests)."""
    import torch

    if name == "auto":
        if device.startswith("cuda"):
            if cuda_bf16 is None:
                cuda_bf16 = torch.cuda.is_bf16_supported()
            return torch.bfloat16 if cuda_bf16 else torch.float16
        if device == "mps":
            return torch.float16
        if kind == "diffusion" and cpu_has_bf16(flags):
            return torch.bfloat16
        return torch.float32
    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]


def dtype_name(dtype) -> str:
    return str(dtype).replace("torch.", "")


def recorded_dtypes(manifest: dict) -> dict[str, str]:
    """kind -> dtype name each model of a run manifest actually ran in (`environment.models.KEY.dtype`):
    what a replay forces, so `dtype: auto` on another machine cannot change the pixels."""
    env = manifest.get("environment") if isinstance(manifest.get("environment"), dict) else {}
    models = env.get("models") if isinstance(env.get("models"), dict) else {}
    kinds = {"llava": "vision", "diffusion": "diffusion"}
    return {kinds[key]: m["dtype"] for key, m in models.items()
            if key in kinds and isinstance(m, dict) and m.get("dtype") in DTYPE_NAMES}
