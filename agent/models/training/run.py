"""One training run from start to finish: check, read the pictures, caption them, train, save.

Every check a user can fail runs before anything is written (the name, the folder, the
pictures, the caption files), and a LoRA that exists is never replaced without `overwrite`.
The LoRA's folder gets `captions.jsonl` before the model loads, checkpoints every `every`
steps and on a cancel (Ctrl-C, SIGTERM, the chat's cancel), and at the end both LoRA files,
`loss.png`, the contact sheet of the validation pictures and `training.json`.
"""

from __future__ import annotations

import logging
import re
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from visionloop.errors import Cancelled, InputError, VisionloopError
from visionloop.models.training import captions as captioning
from visionloop.models.training import report, saving
from visionloop.models.training.data import find_pictures, load_pictures
from visionloop.models.training.store import check_name, family_name, loras_dir
from visionloop.paths import user_path

log = logging.getLogger(__name__)

DEFAULTS = {"trigger": None, "steps": 1000, "rank": 8, "lr": 1e-4, "batch": 1, "resolution": 512, "seed": 0,
            "captions": "auto", "validate": None, "every": 100, "flip": False, "text_encoder": False,
            "gradient_checkpointing": False, "precision": "auto", "adam8bit": False}
#: settings a resumed run must share with the run it continues (the rest may change)
IDENTITY = ("trigger", "rank", "lr", "batch", "resolution", "seed", "flip", "text_encoder", "precision", "adam8bit")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _versions() -> dict:
    from importlib import metadata

    out = {}
    for pkg in ("visionloop", "torch", "diffusers", "transformers", "peft", "safetensors", "accelerate"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def check_settings(s: dict) -> None:
    for key, low in (("steps", 1), ("rank", 1), ("batch", 1), ("every", 1), ("resolution", 8)):
        if not isinstance(s[key], int) or s[key] < low:
            raise InputError(f"{key}: must be a whole number of at least {low}, got {s[key]!r}")
    if s["resolution"] % 8:
        raise InputError(f"resolution: must be a multiple of 8, got {s['resolution']}")
    if not (0 < float(s["lr"]) <= 1):
        raise InputError(f"lr: must be above 0 and at most 1, got {s['lr']!r}")
    if s["precision"] not in ("auto", "fp32", "fp16", "bf16"):
        raise InputError(f"precision: must be auto, fp32, fp16 or bf16, got {s['precision']!r}")


def _settings(given: dict, target: Path, resume: bool) -> tuple[dict, dict | None, Path | None]:
    """The run's settings (defaults, or the checkpoint's on resume, overridden by what was given),
    the checkpoint's state and the checkpoint itself."""
    given = {k: v for k, v in given.items() if v is not None}
    if not resume:
        settings = {**DEFAULTS, **given}
        check_settings(settings)
        return settings, None, None
    found = saving.checkpoints(target)
    if not found:
        raise InputError(f"{target}: no checkpoint to resume from (train it again without --resume)")
    state = saving.read_state(found[-1])
    settings = dict(state["settings"])
    for key, value in given.items():
        if key in IDENTITY and value != settings.get(key):
            raise InputError(f"--{key.replace('_', '-')}: {value!r} differs from the {settings.get(key)!r} the "
                             f"checkpoint was trained with; resume with the same settings")
        if key == "captions" and value != settings.get("captions"):
            raise InputError("--captions: a resumed run keeps the captions it started with "
                             f"({target / 'captions.jsonl'})")
    settings.update({k: v for k, v in given.items() if k not in IDENTITY})
    check_settings(settings)
    if state["step"] >= settings["steps"]:
        raise InputError(f"{target.name}: already trained to {state['step']} steps "
                         f"(give --steps above {state['step']} to train it further)")
    return settings, state, found[-1]


def _load_pipeline(ctx):
    """The active profile's Stable Diffusion, loaded afresh in fp32 for training (the shared
    drawing pipeline stays as it is)."""
    from diffusers import DiffusionPipeline, StableDiffusionPipeline

    from visionloop.models.loading import hub_kwargs, load_guarded, quiet_loading, weights_kwargs

    spec = ctx.config.active.diffusion
    source = ctx.models.resolve(spec.model, "sd")
    kwargs = {**hub_kwargs(spec.revision, ctx.models.offline_for(source), False),
              **weights_kwargs(ctx.config.allow_pickle), "safety_checker": None, "requires_safety_checker": False}
    if ctx.report:
        ctx.report(f"loading Stable Diffusion {spec.model} for training…")
    with quiet_loading():
        pipe = load_guarded(source, lambda: DiffusionPipeline.from_pretrained(source, **kwargs))
    if not isinstance(pipe, StableDiffusionPipeline):
        raise VisionloopError(f"{spec.model}: LoRA training supports Stable Diffusion 1.x/2.x models; "
                              f"this one is a {type(pipe).__name__}")
    return pipe, source


def train_lora(ctx, folder: str, name: str, given: dict, *, out: str | None = None, resume: bool = False,
               overwrite: bool = False, ask: Callable[[Path], str] | None = None,
               on_step: Callable[[int, float], None] | None = None) -> dict:
    """Train (or resume) the LoRA `name` on the pictures in `folder`; returns training.json's record.
    `ask(path)` captions a picture (LLaVA); `on_step(step, loss)` is called after each step."""
    from visionloop.models.threads import pin

    check_name(name)
    root = user_path(out, "--out") if out else loras_dir()
    target = root / name
    if resume and overwrite:
        raise InputError("--resume and --overwrite: give one or the other")
    if not resume and target.exists() and (not target.is_dir() or any(target.iterdir())) and not overwrite:
        raise InputError(f"{target}: a LoRA named {name!r} exists already; give --overwrite to replace it "
                         "or --resume to continue it")
    settings, state, checkpoint = _settings(given, target, resume)
    from visionloop.models.training.loop import pick_precision

    precision = pick_precision(settings["precision"], ctx.models.device)  # what the hardware can't do: now
    if settings["adam8bit"] and not ctx.models.device.startswith("cuda"):
        raise InputError("--adam8bit needs a CUDA GPU (bitsandbytes)")
    skipped: list[str] = []

    def warn(line: str) -> None:  # one line per unreadable picture, as it is met
        skipped.append(line)
        print("warning: " + re.sub(r"[\x00-\x1f\x7f]", "?", line), file=sys.stderr, flush=True)

    source_dir, files = find_pictures(folder)
    pictures = load_pictures(source_dir, files, settings["resolution"], ctx.config.images, warn)
    if state is not None:
        recorded = state["pictures"]
        if [p["sha256"] for p in recorded] != [p.sha256 for p in pictures]:
            raise InputError(f"{source_dir}: these pictures differ from the ones {name!r} was trained on; "
                             "restore them, or train a new LoRA")
        for pic, rec in zip(pictures, recorded):
            pic.caption, pic.caption_source = rec["caption"], rec["caption_source"]
    else:
        captioning.gather(pictures, source_dir, settings["captions"], settings["trigger"],
                          ask or _no_llava)
    # Everything checked: from here on the LoRA's folder is written.
    if not resume and target.exists() and overwrite:
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    target.mkdir(parents=True, exist_ok=True)
    if state is None:
        captioning.write(target, pictures, source_dir)
    threads = pin(ctx.config)
    return _train(ctx, target, name, settings, state, checkpoint, pictures, source_dir, skipped, threads, on_step,
                  precision)


def _no_llava(path: Path) -> str:
    raise InputError(f"{path}: no caption (no {path.with_suffix('.txt').name} beside it, and no LLaVA to ask)")


def _train(ctx, target, name, settings, state, checkpoint, pictures, source_dir, skipped, threads, on_step,
           precision) -> dict:
    from visionloop.models.device import dtype_name
    from visionloop.models.training.loop import Trainer

    started = time.perf_counter()
    pipe, source = _load_pipeline(ctx)
    spec = ctx.config.active.diffusion
    trainer = Trainer(pipe, pictures, rank=settings["rank"], lr=float(settings["lr"]), batch=settings["batch"],
                      seed=settings["seed"], flip=settings["flip"], device=ctx.models.device, precision=precision,
                      text_encoder=settings["text_encoder"], gradient_checkpointing=settings["gradient_checkpointing"],
                      adam8bit=settings["adam8bit"])
    width = pipe.unet.config.cross_attention_dim
    record = dict(state["record"]) if state else {
        "format": 1, "name": name, "status": "training", "started": _now(),
        "base_model": {"model": spec.model, "source": source, "revision": spec.revision,
                       "pipeline": type(pipe).__name__, "cross_attention_dim": width, "family": family_name(width)},
        "settings": settings, "seed": settings["seed"], "folder": str(source_dir),
        "pictures": [p.record(source_dir) for p in pictures], "skipped": skipped, "resumed_at": [],
        "eval_loss": {"start": None, "end": None}, "loss": []}
    record.update(settings=settings, device=ctx.models.device, precision=precision.name,
                  weights_dtype=dtype_name(precision.weights), threads=threads, versions=_versions())
    losses: list[float] = list(record.get("loss") or [])
    if state is not None:
        saving.load_checkpoint(checkpoint, trainer.modules, trainer.optimizer, trainer.generator, trainer.scaler)
        start = int(state["step"])
        losses = losses[:start]
        record["resumed_at"] = [*record.get("resumed_at", []), start]
    else:
        start = 0
        record["eval_loss"]["start"] = trainer.evaluation_loss()
    total, every = settings["steps"], settings["every"]
    validation_dir = target / "validation"

    def validate(step: int) -> None:
        if not settings["validate"]:
            return
        validation_dir.mkdir(exist_ok=True)
        image = trainer.validation_image(settings["validate"], settings["seed"], spec.steps, spec.guidance,
                                         settings["resolution"])
        report._save_png(image, validation_dir / f"step-{step:06d}.png")

    spent = float(record.get("seconds") or 0)

    def keep(step: int) -> Path:
        record.update(loss=losses, steps_done=step, seconds=round(spent + time.perf_counter() - started, 2))
        return saving.save_checkpoint(target, step, trainer.modules, trainer.optimizer, trainer.generator,
                                      {"settings": settings, "pictures": record["pictures"], "record": record},
                                      trainer.scaler)

    if start == 0:
        validate(0)
    record.update(status="training", steps_done=start)
    saving.write_training(target, record)  # `visionloop loras` shows it as training
    bar = report.Bar(total, start) if ctx.progress else None
    shown = report.Smoother(losses)
    try:
        for step in range(start, total):
            if ctx.cancel.is_set():
                raise Cancelled("cancelled")
            loss = trainer.step(step)
            if loss != loss:
                raise VisionloopError(f"training: the loss became NaN at step {step + 1} (lower --lr, or use "
                                      "--precision fp32); the last checkpoint is kept")
            losses.append(loss)
            done = step + 1
            if bar is not None:
                bar.update(done, shown.add(loss), force=done == total)
            if on_step is not None:
                on_step(done, loss)
            if done % every == 0 or done == total:
                validate(done)
            if done % every == 0 and done < total:
                keep(done)
    except Cancelled:
        done = len(losses)
        if bar is not None:
            bar.close()
        record["status"] = "interrupted"
        again = f"visionloop train {source_dir} --name {name}"
        if done > start:
            kept = keep(done)
            saving.write_training(target, record)
            raise Cancelled(f"training interrupted at step {done}/{total}; checkpoint saved in {kept}; "
                            f"continue with: {again} --resume") from None
        saving.write_training(target, record)
        if checkpoint is not None:
            raise Cancelled(f"training interrupted at step {done}/{total}, before another step; the checkpoint "
                            f"{checkpoint} is kept; continue with: {again} --resume") from None
        raise Cancelled(f"training interrupted before its first step; nothing was trained (start again with: "
                        f"{again} --overwrite)") from None
    finally:
        if bar is not None:
            bar.close()
    # Done: the LoRA files, the last checkpoint (to train further), the pictures, the record.
    record["eval_loss"]["end"] = trainer.evaluation_loss()
    metadata = {"ss_network_module": "networks.lora", "ss_network_dim": settings["rank"],
                "ss_network_alpha": settings["rank"], "ss_output_name": name, "ss_steps": total,
                "ss_resolution": f"({settings['resolution']}, {settings['resolution']})", "ss_seed": settings["seed"],
                "ss_learning_rate": settings["lr"], "ss_sd_model_name": spec.model,
                "ss_base_model_version": "sd_v1" if width == 768 else "sd_v2" if width == 1024 else f"width_{width}",
                "ss_tag_frequency": "{}", "visionloop_trigger": settings["trigger"] or ""}
    diffusers_file, kohya_file = saving.save_lora(target, name, trainer.unet,
                                                  trainer.text_encoder if settings["text_encoder"] else None, metadata)
    keep(total)
    shots = sorted((int(p.stem.split("-")[1]), p) for p in validation_dir.glob("step-*.png")) \
        if validation_dir.is_dir() else []
    plot = report.loss_plot(losses, target / "loss.png", f"{name}: loss per step ({total} steps; dark: moving average)")
    sheet = report.contact_sheet(shots, target / "validation.png")
    record.update(status="finished", finished=_now(), steps_done=total, loss=losses,
                  seconds=round(spent + time.perf_counter() - started, 2),
                  validation=[{"step": s, "file": str(p.relative_to(target))} for s, p in shots],
                  files={"diffusers": diffusers_file.name, "kohya": kohya_file.name, "captions": "captions.jsonl",
                         "loss_plot": plot.name, "contact_sheet": sheet.name if sheet else None,
                         "checkpoints": saving.CHECKPOINTS},
                  lora_sha256={"diffusers": _sha(diffusers_file), "kohya": _sha(kohya_file)})
    saving.write_training(target, record)
    return {**record, "folder_out": str(target)}


def _sha(path: Path) -> str:
    from visionloop.images import sha256_file

    return sha256_file(path)
