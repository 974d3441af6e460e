"""A run folder and its manifest: what `run_workflow` and `replay` record, and how.

A run folder is a new, unique folder under the output folder. Its `manifest.json` is written
atomically before the first step, after every step and at the end, so it is always parseable
and its status is the real one, also when a step fails or the process is killed (the watcher
then marks it "interrupted", `mark_interrupted`).

A write that fails (a full disk, a folder made read-only) is a `RecordError` naming the file
and the reason. When the very first write fails, the run has not started: its folder is
removed, so retries leave no empty folders behind. When the final write fails, the manifest
already on disk is overwritten in place with a shorter record saying "failed" (rewriting bytes
a file already holds needs no free space on ordinary file systems), so that it never says
"running" for good.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import platform
import shutil
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from visionloop.errors import Cancelled, ImageError, VisionloopError
from visionloop.models.threads import configured
from visionloop.images import atomic_write_json, ensure_output_dir, pixels_sha256, safe_stem, sha256_file
from visionloop.paths import resolved_path
from visionloop.tools import run_tool
from visionloop.workflows.refs import StepValues
from visionloop.workflows.schema import MANIFEST

log = logging.getLogger(__name__)

FORMAT = "visionloop-run/1"
PACKAGES = ("visionloop", "torch", "transformers", "diffusers", "accelerate", "pillow")
OPTIONAL_PACKAGES = ("onnxruntime", "rapidocr-onnxruntime")  # read-text's backend: recorded when installed
MAX_ERROR_CHARS = 1000  # of the error kept by the in-place fallback record


class RecordError(VisionloopError):
    """A file of the run's own record (manifest.json, outputs.json) could not be written."""


# --- hashing and environment -------------------------------------------------------------

def hash_or_none(path: str | Path) -> str | None:
    """`sha256_file`, or None for a file that is gone or unreadable (the manifest says so)."""
    try:
        return sha256_file(path)
    except (OSError, TypeError, ValueError):  # gone, unreadable, or not a path at all
        return None


def _pixels_or_none(path: str | Path) -> str | None:
    try:
        return pixels_sha256(path)
    except ImageError:
        return None


@functools.cache
def package_versions() -> dict[str, str | None]:
    """The installed versions of the packages a run depends on (None: not installed), and of
    the optional ones that are installed. Read once per process: installs do not change under
    a running process, and reading them costs milliseconds per call."""
    versions: dict[str, str | None] = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    for pkg in OPTIONAL_PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    return versions


def environment(ctx) -> dict:
    models = ctx.models.describe()
    return {"python": platform.python_version(), "platform": platform.platform(), "packages": dict(package_versions()),
            "device": models["device"], "dtype": models["dtype"], "models": models["models"],
            "profile": ctx.config.profile, "threads": configured(ctx.config),  # intra-op CPU threads per job
            # what `replay` needs to run the same models again (models, revisions, LoRAs, sizes)
            "profile_settings": ctx.config.active.model_dump(mode="json"),
            "settings": {"device": ctx.config.device, "dtype": ctx.config.dtype}}


def _refresh_models(env: dict, ctx) -> None:
    """After a step only the loaded models can have changed: refresh just those."""
    models = ctx.models.describe()
    env.update(device=models["device"], dtype=models["dtype"], models=models["models"])


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def new_run_dir(out_dir: Path, label: str) -> Path:
    """A new folder under `out_dir` that no other run uses (created exclusively)."""
    root = ensure_output_dir(out_dir)
    base = f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{safe_stem(label, 'run', 50)}"
    for i in range(10_000):
        path = root / (base if i == 0 else f"{base}-{i}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
        except OSError as exc:  # a full disk, a folder made read-only meanwhile
            raise VisionloopError(f"{path}: cannot create the run folder: {exc.strerror or exc}") from None
    raise VisionloopError(f"{root}: no free run folder name for {base!r}")


def write_record(path: Path, obj: Any) -> None:
    """Write one of the run's own JSON files atomically; `RecordError` (one line) when it cannot be."""
    try:
        atomic_write_json(path, obj)
    except OSError as exc:
        raise RecordError(f"{path}: cannot write: {exc.strerror or exc}") from None


def _rewrite_in_place(path: Path, manifest: dict) -> bool:
    """Overwrite the manifest at `path` with the fullest of a few shorter records of `manifest`
    that fits in the bytes the file already holds (no new space needed). Not atomic: only for
    when the atomic write has failed. True when it was rewritten."""
    slim = {**manifest, "environment": None, "workflow": {k: v for k, v in (manifest.get("workflow") or {}).items()
                                                          if k != "text"},
            "steps": [{k: v for k, v in s.items() if k not in ("data", "args")} for s in manifest.get("steps") or []]}
    bare = {key: manifest.get(key) for key in ("format", "status", "error", "failed_step", "run_dir", "started",
                                               "finished")}
    try:
        size = path.stat().st_size
        for record in (manifest, slim, bare):
            data = json.dumps(record, ensure_ascii=False, default=str, separators=(",", ":")).encode() + b"\n"
            if len(data) <= size:
                with open(path, "r+b") as fh:
                    fh.write(data)
                    fh.truncate()
                    fh.flush()
                    os.fsync(fh.fileno())
                return True
    except OSError:
        log.warning("%s: could not mark the run failed in place", path, exc_info=True)
    return False


# --- one run -------------------------------------------------------------------------------

class Recorder:
    """Runs tool calls into one run folder and keeps its manifest current. Shared by
    `run_workflow` and `replay`."""

    def __init__(self, out_dir: Path, label: str, ctx, manifest: dict):
        # absolute, like the image paths the tools return: `run --json` and the manifest name it
        self.run_dir = new_run_dir(resolved_path(out_dir), label)
        self.ctx = dataclasses.replace(ctx, out_dir=self.run_dir)  # same models, same cancel flag
        self.path = self.run_dir / MANIFEST
        self.started = time.perf_counter()
        self.manifest = {"format": FORMAT, **manifest, "status": "running", "run_dir": str(self.run_dir),
                         "started": _now(), "finished": None, "seconds": None, "error": None,
                         "failed_step": None, "steps": [], "outputs": {}, "environment": environment(ctx)}
        try:
            self.write()
        except RecordError as exc:  # nothing has run: leave no empty folder behind
            shutil.rmtree(self.run_dir, ignore_errors=True)
            raise RecordError(f"{exc}; the run did not start") from None

    def write(self) -> None:
        write_record(self.path, self.manifest)

    def call(self, step_id: str, tool_name: str, args: dict, registry) -> tuple[dict, StepValues]:
        """Run one step's tool with resolved `args`; return its record and what later steps see.
        The manifest is written after the step: `RecordError` when it cannot be."""
        record: dict[str, Any] = {"id": step_id, "tool": tool_name, "args": args, "status": "running",
                                  "started": _now(), "seconds": None, "text": "", "images": [], "error": None}
        self.manifest["steps"].append(record)
        started = time.perf_counter()
        try:
            tool = registry.tool(tool_name)
            results = run_tool(tool, args, self.ctx)
        except Cancelled:
            record.update(status="failed", error="cancelled", seconds=round(time.perf_counter() - started, 4))
            raise
        except VisionloopError as exc:  # e.g. the tool's plugin is no longer installed
            results = None
            record["error"] = str(exc)
        record["seconds"] = round(time.perf_counter() - started, 4)
        values = StepValues()
        if results is not None:
            errors = [r.error for r in results if r.error]
            values.text = "\n".join(r.text for r in results if r.text)
            values.images = [str(p) for r in results for p in r.images]
            values.data = results[0].data if len(results) == 1 else {"results": [r.data for r in results]}
            record["error"] = "; ".join(errors) or None
            data = results[0].data if results else {}
            for key in ("model", "model_id", "revision", "seed", "device", "dtype", "threads"):
                if key in data:
                    record[key] = data[key]
            record["data"] = values.data
        record["text"] = values.text
        record["images"] = values.images
        record["image_hashes"] = [{"path": p, "sha256": hash_or_none(p), "pixels_sha256": _pixels_or_none(p)}
                                  for p in values.images]
        record["status"] = "failed" if record["error"] else "ok"
        _refresh_models(self.manifest["environment"], self.ctx)  # models loaded by this step
        self.write()
        return record, values

    def finish(self, status: str, error: str | None = None, failed_step: str | None = None) -> str | None:
        """Write the final manifest. When it cannot be written, the run has failed: the manifest
        on disk is marked failed in place, and the reason is returned (None when all went well)."""
        self.manifest.update(status=status, error=error, failed_step=failed_step, finished=_now(),
                             seconds=round(time.perf_counter() - self.started, 4))
        try:
            self.write()
            return None
        except RecordError as exc:
            problem = str(exc)
        why = "; ".join(part for part in (error, problem) if part)
        self.manifest.update(status="failed", error=why[:MAX_ERROR_CHARS])
        _rewrite_in_place(self.path, self.manifest)
        return problem


def mark_interrupted(run_dir: str | Path, reason: str = "interrupted: the process ended during the run") -> bool:
    """Rewrite a run folder's manifest that still says "running" (its process was killed) to
    "interrupted", atomically. True when it was rewritten; a missing, unreadable or finished
    manifest is left as it is."""
    path = Path(run_dir) / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(manifest, dict) or manifest.get("status") != "running":
        return False
    for step in manifest.get("steps") or []:
        if isinstance(step, dict) and step.get("status") == "running":
            step["status"] = "interrupted"
    manifest.update(status="interrupted", error=reason, interrupted_at=_now())
    try:
        atomic_write_json(path, manifest)
    except OSError:
        return False
    return True
