"""LoRAs on the diffusion backend's shared denoiser: the profile's (`diffusion.loras`, loaded
once as adapters) and each call's (`--lora`, added and removed per call beside them).

Every family whose pipeline loads LoRA weights takes them (SD 1.x/2.x and SDXL on the UNet,
SD3 and FLUX on the transformer); a family without is refused in one line. A LoRA trained on
another family of UNet (another text width) is refused before it is loaded.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from visionloop.errors import ModelError
from visionloop.models.loading import load_guarded, lora_target, weights_kwargs


def _sha256(path) -> str | None:
    from visionloop.images import sha256_file

    try:
        return sha256_file(path)
    except OSError:
        return None


class LoraSlots:
    """Mixed into `DiffusionBackend` (which has `text2img`, `family`, `model_id`, `allow_pickle`,
    `where`): the adapters loaded on its denoiser."""

    def _check_family(self, path, label: str, check: str = "") -> None:
        """The text-width check (UNet families: a LoRA's cross-attention width names its family)."""
        if self.family.denoiser != "unet":
            return
        from visionloop.models.training.store import check_family

        check_family(path, self.text2img.unet, label, self.model_id, check)

    def _load_loras(self, pipe, loras) -> list[dict]:
        """The profile's LoRAs (`loras:`; a path, a hub id, or the name of a trained LoRA),
        loaded once as adapters; each recorded with its file's sha256 where it is on disk."""
        from visionloop.models.training.store import NAME, loras_dir, weights_in

        self._call_adapters: dict[str, object] = {}  # adapter name -> LoraChoice, per-call LoRAs
        if not loras:
            return []
        self.family.require("lora", f"a LoRA ({self.where('diffusion.loras')})")
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
                self._check_family(file, lora.path, check)
            load_guarded(lora.path, lambda t=target, k=kwargs: pipe.load_lora_weights(t, **k))
            names.append(name)
            scales.append(float(lora.scale))
            record.append({"path": lora.path, "name": name, "scale": float(lora.scale),
                           "sha256": _sha256(file) if file is not None else None})
        pipe.set_adapters(names, adapter_weights=scales)
        return record

    def use_loras(self, choices) -> list[dict]:
        """Put this call's LoRAs (`--lora`, resolved `LoraChoice`s) on the shared denoiser beside
        the profile's, each at its scale; LoRAs of earlier calls that this one does not use are
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
        if wanted:
            self.family.require("lora", "--lora")
            if importlib.util.find_spec("peft") is None:
                raise ModelError("--lora needs the peft package: pip install peft")
        for adapter, choice in wanted.items():
            if adapter in self._call_adapters:
                continue
            self._check_family(choice.path, f"lora {choice.given}")
            file = Path(choice.path)
            load_guarded(choice.path, lambda f=file, a=adapter: pipe.load_lora_weights(
                str(f.parent), weight_name=f.name, adapter_name=a, use_safetensors=True))
            self._call_adapters[adapter] = choice
        names = [r["name"] for r in self.loras] + list(wanted)
        if names:
            pipe.set_adapters(names, adapter_weights=[r["scale"] for r in self.loras] +
                              [c.scale for c in wanted.values()])
        return [*self.loras, *(c.record() for c in wanted.values())]
