"""Files a training run writes: the LoRA in diffusers format (`pytorch_lora_weights.safetensors`,
what `load_lora_weights` and `draw --lora` read) and in kohya format (`NAME.kohya.safetensors`,
what AUTOMATIC1111 and ComfyUI load), checkpoints a run resumes from, and `training.json`.

As diffusers' `train_text_to_image_lora.py`: `get_peft_model_state_dict` →
`convert_state_dict_to_diffusers` → `save_lora_weights`; the kohya file is the same peft layers
through `convert_state_dict_to_kohya`, with text-encoder keys named as A1111 expects. A checkpoint
holds everything a resumed run needs to continue bit for bit: the trainable weights, the
optimizer's state, the noise generator's state and the losses so far; all safetensors and JSON,
no pickle. Every file is written to a temporary name first and then renamed into place.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from visionloop.errors import VisionloopError
from visionloop.images import atomic_write_json
from visionloop.models.training.store import DIFFUSERS_FILE

CHECKPOINTS = "checkpoints"
KEEP_CHECKPOINTS = 2


def kohya_name(name: str) -> str:
    return f"{name}.kohya.safetensors"


def lora_state(unet, text_encoder=None) -> tuple[dict, dict | None]:
    """The LoRA layers as diffusers saves them (`convert_state_dict_to_diffusers`)."""
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    unet_layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    te_layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(text_encoder)) if text_encoder else None
    return unet_layers, te_layers


def save_lora(folder: Path, name: str, unet, text_encoder=None, metadata: dict | None = None) -> tuple[Path, Path]:
    """Write both LoRA files into `folder`; returns (diffusers file, kohya file). The kohya file
    is `convert_state_dict_to_kohya` of the same peft layers (prefixed `unet.`, `text_encoder.`)."""
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_kohya
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import save_file

    unet_layers, te_layers = lora_state(unet, text_encoder)
    peft_layers = {f"unet.{k}": v for k, v in get_peft_model_state_dict(unet).items()}
    if text_encoder is not None:
        peft_layers.update({f"text_encoder.{k}": v for k, v in get_peft_model_state_dict(text_encoder).items()})
    target = folder / DIFFUSERS_FILE
    with tempfile.TemporaryDirectory(dir=folder, prefix=".saving-") as tmp:
        StableDiffusionPipeline.save_lora_weights(save_directory=tmp, unet_lora_layers=unet_layers,
                                                  text_encoder_lora_layers=te_layers, safe_serialization=True)
        kohya = kohya_names(convert_state_dict_to_kohya(peft_layers))
        staged = Path(tmp) / "kohya.safetensors"
        save_file({k: v.detach().to("cpu").contiguous() for k, v in kohya.items()}, staged,
                  metadata={k: str(v) for k, v in (metadata or {}).items()})
        os.replace(Path(tmp) / DIFFUSERS_FILE, target)
        kohya_path = folder / kohya_name(name)
        os.replace(staged, kohya_path)
    return target, kohya_path


def kohya_names(state: dict) -> dict:
    """Text-encoder keys as AUTOMATIC1111 and ComfyUI name them (`lora_te1_text_model_...`): newer
    transformers' CLIPTextModel has no `text_model` level, so the converted names lack it."""
    out = {}
    for key, value in state.items():
        if key.startswith("lora_te1_") and not key.startswith("lora_te1_text_model_"):
            key = "lora_te1_text_model_" + key[len("lora_te1_"):]
        out[key] = value
    return out


# --- checkpoints ----------------------------------------------------------------------------

def trainable(modules: dict) -> dict:
    """{prefixed name: parameter} of every trainable parameter, in a fixed order."""
    return {f"{prefix}.{name}": p for prefix, module in modules.items() if module is not None
            for name, p in module.named_parameters() if p.requires_grad}


def save_checkpoint(folder: Path, step: int, modules: dict, optimizer, generator, state: dict,
                    scaler=None) -> Path:
    """`checkpoints/step-NNNNNN/`, written under a temporary name and renamed whole; the
    oldest beyond the last `KEEP_CHECKPOINTS` are removed."""
    import torch
    from safetensors.torch import save_file

    root = folder / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:06d}"
    staging = Path(tempfile.mkdtemp(dir=root, prefix=f".step-{step:06d}-"))
    try:
        save_file({k: p.detach().to("cpu").contiguous().clone() for k, p in trainable(modules).items()},
                  staging / "lora.safetensors")
        opt = optimizer.state_dict()
        tensors, plain = {"rng.noise": generator.get_state()}, {}
        for index, values in opt["state"].items():
            for key, value in values.items():
                if torch.is_tensor(value):
                    tensors[f"state.{index}.{key}"] = value.detach().to("cpu").contiguous().clone()
                else:
                    plain[f"{index}.{key}"] = value
        save_file(tensors, staging / "optimizer.safetensors")
        atomic_write_json(staging / "state.json", {**state, "step": step, "optimizer": {
            "param_groups": opt["param_groups"], "plain_state": plain},
            "scaler": scaler.state_dict() if scaler is not None else None})
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    for old in checkpoints(folder)[:-KEEP_CHECKPOINTS]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def checkpoints(folder: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    root = folder / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-") and (p / "state.json").is_file()]
    return sorted(found, key=lambda p: p.name)


def read_state(checkpoint: Path) -> dict:
    try:
        return json.loads((checkpoint / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise VisionloopError(f"{checkpoint / 'state.json'}: unreadable checkpoint: {exc}") from None


def load_checkpoint(checkpoint: Path, modules: dict, optimizer, generator, scaler=None) -> dict:
    """Put a checkpoint's weights, optimizer state and generator state back; returns its state."""
    import torch
    from safetensors.torch import load_file

    state = read_state(checkpoint)
    try:
        weights = load_file(checkpoint / "lora.safetensors")
        tensors = load_file(checkpoint / "optimizer.safetensors")
    except Exception as exc:  # noqa: BLE001 - safetensors' own errors
        raise VisionloopError(f"{checkpoint}: damaged checkpoint ({str(exc).strip() or type(exc).__name__})") from None
    params = trainable(modules)
    if set(weights) != set(params):
        raise VisionloopError(f"{checkpoint}: the checkpoint's LoRA layers do not match this training's settings "
                              "(rank, --text-encoder or the base model changed)")
    with torch.no_grad():
        for key, p in params.items():
            p.copy_(weights[key].to(p.device, p.dtype))
    saved = state["optimizer"]
    opt_state: dict = {}
    for key, value in tensors.items():
        if key.startswith("state."):
            _, index, name = key.split(".", 2)
            opt_state.setdefault(int(index), {})[name] = value
    for key, value in saved.get("plain_state", {}).items():
        index, name = key.split(".", 1)
        opt_state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": opt_state, "param_groups": saved["param_groups"]})
    generator.set_state(tensors["rng.noise"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    return state


def write_training(folder: Path, record: dict) -> Path:
    path = folder / "training.json"
    atomic_write_json(path, record)
    return path
