"""Where trained LoRAs live, what they are called, and how `--lora NAME[:SCALE]` finds one.

A trained LoRA is a folder `loras/NAME/` in the user data folder (`$VISIONLOOP_DATA_DIR`, else
the platform's: `~/.local/share/visionloop` on Linux), or wherever `train --out` put it. Its
`pytorch_lora_weights.safetensors` is what `draw --lora NAME` loads; `training.json` says which
base model it was trained on. A value that is not a known name is a path: a `.safetensors`
file, or a folder holding one.

Light on purpose: no torch here (the CLI lists LoRAs and checks names without loading it).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from visionloop.errors import InputError, ModelError
from visionloop.paths import user_path

DIFFUSERS_FILE = "pytorch_lora_weights.safetensors"
TRAINING_FILE = "training.json"
CAPTIONS_FILE = "captions.jsonl"
#: a LoRA's name: a folder name on every system, and a word in a prompt or a chat message
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def data_dir() -> Path:
    """The user data folder: `$VISIONLOOP_DATA_DIR`, else the platform's."""
    env = os.environ.get("VISIONLOOP_DATA_DIR")
    if env and env.strip():
        return user_path(env, "$VISIONLOOP_DATA_DIR")
    import platformdirs

    from visionloop.config import APP

    return Path(platformdirs.user_data_dir(APP))


def loras_dir() -> Path:
    """Where `train` puts LoRAs and `--lora NAME` looks for them."""
    return data_dir() / "loras"


def check_name(name: str, what: str = "--name") -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name) or name.endswith("."):
        raise InputError(f"{what}: {name!r} is not a usable LoRA name (letters, digits, '_', '-', '.', "
                         "starting with a letter or digit, at most 64 characters)")
    return name


@dataclass(frozen=True)
class LoraChoice:
    """One `--lora` value, resolved before any model loads."""

    name: str  # what the user called it (a LoRA's name, or the file's stem)
    path: str  # the .safetensors file
    sha256: str
    scale: float
    given: str  # the value as given, for messages

    def record(self) -> dict:
        return {"name": self.name, "path": self.path, "sha256": self.sha256, "scale": self.scale}


def split_scale(text: str) -> tuple[str, float]:
    """`NAME[:SCALE]`: the part after the last ':' is a scale when it reads as a number
    (so `C:\\x.safetensors` and `a:b` stay whole); 1.0 otherwise."""
    head, sep, tail = text.rpartition(":")
    if sep and head:
        try:
            scale = float(tail)
        except ValueError:
            return text, 1.0
        if scale != scale or abs(scale) > 100:
            raise InputError(f"lora: {text!r}: the scale must be a number between -100 and 100")
        return head, scale
    return text, 1.0


def weights_in(folder: Path) -> Path | None:
    """The LoRA file of a folder: ours by name, else its one `.safetensors` file."""
    ours = folder / DIFFUSERS_FILE
    if ours.is_file():
        return ours
    found = sorted(p for p in folder.glob("*.safetensors") if p.is_file())
    return found[0] if len(found) == 1 else None


def find_lora(text: str, what: str = "lora") -> tuple[str, Path]:
    """(name, file) for a LoRA name or path; one-line `InputError` otherwise."""
    from visionloop.models.loading import PICKLE_SUFFIXES

    if NAME.fullmatch(text) and not text.endswith((".safetensors", *PICKLE_SUFFIXES)):
        folder = loras_dir() / text
        if folder.is_dir():
            file = weights_in(folder)
            if file is None:
                raise InputError(f"{what}: {folder}: no {DIFFUSERS_FILE} in this LoRA folder (is its training "
                                 "finished? `visionloop train ... --resume` continues it)")
            return text, file
    path = user_path(text, what)
    if path.is_dir():
        file = weights_in(path)
        if file is None:
            raise InputError(f"{what}: {path}: no {DIFFUSERS_FILE} (or single .safetensors file) in this folder")
        return path.name, file
    if path.is_file():
        if path.suffix.lower() != ".safetensors":
            raise InputError(f"{what}: {path}: not a .safetensors file (LoRAs are loaded from safetensors only)")
        name = path.stem.removesuffix(".kohya") if path.name != DIFFUSERS_FILE else path.parent.name
        return name, path
    known = ", ".join(sorted(e["name"] for e in list_loras())[:8]) or "none yet"
    raise InputError(f"{what}: {text!r}: no LoRA of that name in {loras_dir()} and no such file "
                     f"(trained LoRAs: {known}; `visionloop loras` lists them)")


def resolve_loras(values: list[str] | None) -> list[LoraChoice]:
    """`--lora` values (`NAME[:SCALE]`, names or paths) as `LoraChoice`s, each file hashed."""
    from visionloop.images import sha256_file

    out: list[LoraChoice] = []
    for value in values or []:
        ref, scale = split_scale(str(value).strip())
        name, file = find_lora(ref)
        try:
            digest = sha256_file(file)
        except OSError as exc:
            raise InputError(f"lora: {file}: cannot read: {exc.strerror or exc}") from None
        if any(c.sha256 == digest for c in out):
            raise InputError(f"lora: {value!r}: the same LoRA is given twice")
        out.append(LoraChoice(name=name, path=str(file), sha256=digest, scale=scale, given=str(value)))
    return out


def read_training(folder: Path) -> dict | None:
    """A LoRA folder's training.json, or None when it has none (or it is unreadable)."""
    try:
        data = json.loads((folder / TRAINING_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def list_loras(root: Path | None = None) -> list[dict]:
    """The LoRAs in the loras folder: name, base model, trigger, steps, date, state."""
    root = root or loras_dir()
    out = []
    try:
        folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []
    for folder in folders:
        info = read_training(folder) or {}
        base = info.get("base_model") or {}
        settings = info.get("settings") or {}
        file = weights_in(folder)
        state = info.get("status") or ("finished" if file else "unfinished")
        out.append({"name": folder.name, "path": str(folder), "file": str(file) if file else None,
                    "base_model": base.get("model"), "family": base.get("family"),
                    "trigger": settings.get("trigger"), "steps": info.get("steps_done"),
                    "date": info.get("finished") or info.get("started"), "status": state})
    return out


# --- base model families ---------------------------------------------------------------------

_FAMILIES = {768: "SD 1.x", 1024: "SD 2.x", 2048: "SDXL", 4096: "SD3/FLUX"}


def family_name(width: int | None) -> str:
    if width is None:
        return "an unknown model family"
    return f"{_FAMILIES[width]} ({width}-wide text features)" if width in _FAMILIES else \
        f"a model with {width}-wide text features"


def lora_text_width(path: str | Path, label: str | None = None) -> int | None:
    """The text-feature width a LoRA was trained for, read from the shapes in its header (the
    input side of a cross-attention key projection), in any of the usual key layouts."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            for key in fh.keys():
                low = key.replace("_", ".")
                if "attn2.to.k" in low and any(d in low for d in ("lora.down", "lora.A")):
                    return int(fh.get_slice(key).get_shape()[-1])
    except Exception as exc:  # noqa: BLE001 - safetensors' own error is a bare Exception subclass
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise ModelError(f"{label or path}: damaged or not a safetensors file ({reason})") from None
    return None


def check_family(path: str | Path, unet, label: str, model_id: str, check: str = "") -> None:
    """Refuse, in one line, a LoRA trained on another family of base model than `unet`'s.
    `label` starts the message (the LoRA as the user named it), `check` ends it."""
    width = lora_text_width(path, label)
    wanted = unet.config.cross_attention_dim
    wanted = wanted[0] if isinstance(wanted, (list, tuple)) else wanted
    if width is not None and width != wanted:
        raise ModelError(f"{label}: this LoRA was trained for {family_name(width)}, but the profile's model "
                         f"{model_id} is {family_name(wanted)}; use a LoRA trained on this model's family"
                         + (f" {check}" if check else ""))
