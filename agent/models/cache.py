"""`ModelCache`: every model is loaded once per process, lazily, and shared by every tool.

`see`, `caption` and `read-text --engine llava` get the same `LlavaBackend`; `draw`, `edit`
and `restyle` get the same `DiffusionBackend`. `loads` counts real loads so tests (and
curious users, with `-v`) can check that nothing was loaded twice.

A first load can take minutes with real weights: `report`, when set (the CLI sets it on a
terminal), gets one line as it starts ("loading LLaVA llava-hf/llava-1.5-7b-hf (14.1 GB)…") and
one when it is done ("LLaVA llava-hf/llava-1.5-7b-hf loaded in 41.2 s").
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

from visionloop.config import TINY, Config
from visionloop.errors import ModelError
from visionloop.paths import user_path

log = logging.getLogger(__name__)


class ModelCache:
    def __init__(self, config: Config):
        from visionloop.models.loading import apply_offline  # light: no hub import

        apply_offline(config.offline)  # before any model library is imported, where possible
        self.config = config
        self._models: dict[str, Any] = {}
        self._lock = threading.RLock()
        self.loads: Counter[str] = Counter()
        self._device: str | None = None
        self._dtype = None
        self.report: Callable[[str], None] | None = None  # progress lines (a terminal's stderr)
        self.forced_dtypes: dict[str, str] = {}  # kind -> dtype name (replay: what the manifest recorded)
        self.forced_quantize: str | None = None  # vision.quantize as recorded (replay)

    # -- device ----------------------------------------------------------------------------
    @property
    def device(self) -> str:
        if self._device is None:
            from visionloop.models.device import resolve_device

            self._device = resolve_device(self.config.device)
        return self._device

    @property
    def dtype(self):
        """The vision model's dtype (`dtype_for("vision")`)."""
        if self._dtype is None:
            self._dtype = self.dtype_for("vision")
        return self._dtype

    def dtype_for(self, kind: str):
        """The dtype a `kind` of model (`vision`, `diffusion`) runs in: `forced_dtypes[kind]`
        when set (a replay forces what its manifest recorded), else the config's `dtype`
        resolved for this model and device (`auto` differs per model, see device.py)."""
        import torch

        from visionloop.models.device import resolve_dtype

        forced = getattr(self, "forced_dtypes", {}).get(kind)
        if forced:
            return getattr(torch, forced)
        return resolve_dtype(self.config.dtype, self.device, kind=kind)

    # -- generic ---------------------------------------------------------------------------
    def where(self, key: str) -> str:
        """`profiles.NAME.KEY`, and the config file it came from: what a message points at."""
        where = f"profiles.{self.config.profile}.{key}"
        return f"{where} in {self.config.source}" if self.config.source else where

    def resolve(self, model_id: str, kind: str, key: str | None = None) -> str:
        """What to hand `from_pretrained`: the tiny model's folder, a local folder, or a hub id.
        A local folder must hold the `kind` of model asked for, and anything else must be a
        valid hub id; `key` (e.g. `vision.model`) is named in the one-line error otherwise."""
        if model_id == TINY:
            from visionloop.models.tiny import tiny_model_path

            return str(tiny_model_path(kind, self.config.cache_path))
        from visionloop.models.loading import check_hub_id, check_model_folder

        check = f"(check {self.where(key or ('vision.model' if kind == 'llava' else 'diffusion.model'))})"
        local = user_path(model_id)
        if local.exists():
            check_model_folder(local, kind, model_id, check)
            return str(local)
        if model_id.startswith(("/", ".", "~")):  # meant as a folder: never ask the hub for it
            raise ModelError(f"{model_id}: model folder not found {check}")
        check_hub_id(model_id, check)
        return model_id

    def offline_for(self, *sources: str | None) -> bool:
        """Load from the local cache only? Yes when asked (config or HF_HUB_OFFLINE), and also
        when a hub model is wanted but the hub cannot be reached: the hub client would
        otherwise retry for minutes before giving up (a cached model then loads at once, a
        missing one gets the one-line 'not in the local cache' error)."""
        from visionloop.models.loading import hub_reachable, is_offline

        if is_offline(self.config.offline):
            return True
        if all(s is None or Path(s).exists() for s in sources):
            return False  # local folders: no network involved
        if not hub_reachable():
            log.info("the Hugging Face hub cannot be reached; loading from the local cache only")
            return True
        return False

    def get(self, key: str, factory: Callable[[], Any], label: str | None = None) -> Any:
        """The model under `key`, built by `factory()` the first time it is asked for; the
        load is announced through `report` as `label` (e.g. "LLaVA llava-hf/... (14.1 GB)")."""
        with self._lock:
            if key not in self._models:
                self.loads[key] += 1
                started = time.perf_counter()
                self._say(f"loading {label or key}…")
                self._models[key] = factory()
                self._say(f"{(label or key).split(' (')[0]} loaded in {time.perf_counter() - started:.1f} s")
            return self._models[key]

    def _say(self, line: str) -> None:
        if self.report is not None:
            self.report(line)

    def label(self, name: str, model_id: str) -> str:
        """How a load is announced: "LLaVA llava-hf/llava-1.5-7b-hf (14.1 GB)" (the size when
        the weights are on disk: a local folder or the Hugging Face cache)."""
        from visionloop.models.loading import weights_size

        if model_id == TINY:
            return f"{name} tiny (built-in)"
        size = weights_size(model_id)
        if not size:
            return f"{name} {model_id}"
        return f"{name} {model_id} ({size / 1e9:.1f} GB)" if size >= 1e9 else f"{name} {model_id} ({size / 1e6:.0f} MB)"

    def loaded(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._models)

    def describe(self) -> dict:
        """Loaded models, device and dtype, for run manifests."""
        from visionloop.models.device import dtype_name

        out = {"device": self._device, "dtype": dtype_name(self._dtype) if self._dtype is not None else None,
               "models": {}}
        for key, model in self.loaded().items():
            out["models"][key] = {"model": getattr(model, "model_id", None), "source": getattr(model, "source", None),
                                  "revision": getattr(model, "revision", None)}
            if getattr(model, "dtype", None) is not None:  # the dtype this model actually runs in
                out["models"][key]["dtype"] = dtype_name(model.dtype)
            if isinstance(getattr(model, "quantize", None), str):  # in-process LLaVA: none | int8
                out["models"][key]["quantize"] = model.quantize
            if callable(getattr(model, "describe", None)) and key == "diffusion":  # family, pipeline class
                out["models"][key].update(model.describe())
        return out

    # -- backends --------------------------------------------------------------------------
    def llava(self):
        """The shared LLaVA backend of the active profile: a `VisionBackend` (vision_backend.py),
        in this process (`backend: transformers`) or on a server (`ollama`, `openai`)."""
        spec = self.config.active.vision
        if spec.backend != "transformers":  # a server: checked (reachable, model there) once, no torch
            def where(key: str) -> str:
                return self.where(f"vision.{key}")

            def connect():
                if spec.backend == "ollama":
                    from visionloop.models.ollama import OllamaBackend as Remote
                else:
                    from visionloop.models.openai_compat import OpenAIBackend as Remote
                return Remote(self.config, spec, where)

            return self.get("llava", connect, f"LLaVA {spec.model} (through {spec.backend})")

        def load():
            from visionloop.models.llava import LlavaBackend
            from visionloop.models.loading import check_remote_code

            key = f"{self.config.source}: " if self.config.source else ""
            key += f"profiles.{self.config.profile}.vision.revision"
            check_remote_code(spec.revision, self.config.trust_remote_code, key)  # before building or loading
            from visionloop.models.llava_speed import resolve_quantize

            quantize = self.forced_quantize or resolve_quantize(spec.quantize, self.config.dtype, self.device,
                                                                where=self.where("vision.quantize"))
            source = self.resolve(spec.model, "llava")
            return LlavaBackend(spec.model, source, spec.revision, self.device,
                                self.dtype, offline=self.offline_for(source),
                                quantize=quantize, feature_cache=spec.feature_cache,
                                trust_remote_code=self.config.trust_remote_code,
                                allow_pickle=self.config.allow_pickle,
                                revision_key=key)

        return self.get("llava", load, self.label("LLaVA", spec.model))

    def diffusion(self):
        """The shared Stable Diffusion backend of the active profile (draw, edit, restyle)."""
        spec = self.config.active.diffusion

        def load():
            from visionloop.models.diffusion import DiffusionBackend

            inpaint = self.resolve(spec.inpaint_model, "sd", "diffusion.inpaint_model") if spec.inpaint_model else None
            refiner = self.resolve(spec.refiner, "sd", "diffusion.refiner") if spec.refiner else None
            source = self.resolve(spec.model, "sd")
            return DiffusionBackend(spec, source, self.device, self.dtype_for("diffusion"), inpaint_source=inpaint,
                                    offline=self.offline_for(source, inpaint, refiner),
                                    allow_pickle=self.config.allow_pickle, where=self.where, refiner_source=refiner)

        return self.get("diffusion", load, self.label("Stable Diffusion", spec.model))

    def segmenter(self):
        """The shared text-prompted segmenter (CLIPSeg) of the active profile (`segmenter:`):
        `edit --where` and `segment`."""
        spec = self.config.active.segmenter

        def load():
            from visionloop.models.segmenter import SegmenterBackend, segmenter_source

            source = segmenter_source(self, spec.model)
            return SegmenterBackend(spec.model, source, spec.revision, self.device,
                                    offline=self.offline_for(source), allow_pickle=self.config.allow_pickle)

        return self.get("segmenter", load, self.label("segmenter", spec.model))

    def ip_adapter(self):
        """The profile's IP-Adapter (`diffusion.ip_adapter`): its weights and CLIP image
        encoder, loaded once; None when the profile names none."""
        spec = self.config.active.diffusion.ip_adapter
        if spec is None:
            return None

        def load():
            from visionloop.models.ip_adapter import IpAdapterBackend, locate

            offline = self.offline_for(None if spec.model == TINY else spec.model)
            weight, encoder, subfolder = locate(self, spec, offline)
            return IpAdapterBackend(spec, weight, encoder, subfolder, self.device, self.dtype_for("diffusion"),
                                    offline=offline)

        return self.get("ip_adapter", load, self.label("IP-Adapter", spec.model))

    def ocr(self, engine: str = "auto"):
        """The shared OCR engine (`rapidocr` or `tesseract`; `auto` picks one), loaded once."""
        from visionloop.models.ocr import load_engine, resolve_engine

        name = resolve_engine(engine)
        return self.get(f"ocr:{name}", lambda: load_engine(name), f"OCR engine {name}")
