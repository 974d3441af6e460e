"""Running a workflow: check the inputs, call each step's tool in order, write the run folder.

A run folder (a new, unique folder under `out_dir`) holds the images the steps saved,
`outputs.json`, any sidecar `files:`, and `manifest.json`: everything needed to know what
happened and to replay it (see `agent.workflows.replay`). The manifest is written atomically
before the first step, after every step and at the end, so it is always parseable and its
status is the real one, also when a step fails or the process is killed.

`run_workflow` runs in the calling thread. Callers that own a `Loop` submit it as a job
(`loop.submit(lambda ctx: run_workflow(wf, inputs, ctx, registry, out))`) so that it shares
the loop's models and never runs beside another job.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import platform
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

from agent.errors import Cancelled, ImageError, VisionloopError
from agent.images import (atomic_write_bytes, atomic_write_json, confined_path, ensure_output_dir, pixels_sha256,
                          safe_stem, sha256_file)
from agent.tools import coerce_value, run_tool
from agent.workflows.refs import RefError, Scope, StepValues, resolve
from agent.workflows.validate import Workflow, WorkflowError, input_as_tool_input
from agent.paths import user_path

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
OUTPUTS = "outputs.json"
PACKAGES = ("visionloop", "torch", "transformers", "diffusers", "accelerate", "pillow")
OPTIONAL_PACKAGES = ("onnxruntime", "rapidocr-onnxruntime")  # read-text's backend: recorded when installed


@dataclass
class WorkflowOutcome:
    """The result of one run. `steps` are the per-step records also found in the manifest."""

    workflow: str
    status: str  # "ok" or "failed"
    run_dir: Path
    outputs: dict[str, Any] = field(default_factory=dict)
    steps: list[dict] = field(default_factory=list)
    manifest: Path | None = None
    error: str | None = None
    failed_step: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_json(self) -> dict:
        """Exactly what `visionloop run --json` prints."""
        return {"workflow": self.workflow, "status": self.status, "outputs": self.outputs, "steps": self.steps,
                "manifest": str(self.manifest) if self.manifest else None}


# --- inputs ----------------------------------------------------------------------------------

def check_inputs(wf: Workflow, given: dict[str, Any], hint: str = "{name}=VALUE") -> dict[str, Any]:
    """Coerce the given inputs to their declared types, fill in defaults, and refuse unknown or
    missing ones, all before any model loads. Raises `WorkflowError` naming every problem.
    `hint` says how to give a missing input in the caller's syntax (the CLI: "--input {name}=VALUE";
    the default, "{name}=VALUE", also fits the chat's `/run W name=value`)."""
    problems: list[str] = []
    declared = wf.spec.inputs
    for name in given:
        if name not in declared:
            problems.append(f"{wf.source}: unknown input {name!r} (inputs: {', '.join(declared) or 'none'})")
    values: dict[str, Any] = {}
    for name, spec in declared.items():
        value = given.get(name)
        if value is None:
            value = spec.default
        if value is None:
            if spec.is_required:
                problems.append(f"{wf.source}: input {name!r} is required (give {hint.format(name=name)})")
            values[name] = None
            continue
        try:
            value = coerce_value(input_as_tool_input(name, spec), value)
        except ValueError as exc:
            problems.append(f"{wf.source}: input {name!r}: {exc}")
            continue
        if spec.type == "image":
            p = user_path(value)
            if not p.is_file():
                problems.append(f"{wf.source}: input {name!r}: {value}: "
                                f"{'is a folder, not an image file' if p.is_dir() else 'file not found'}")
            value = str(p.resolve())  # the manifest must still point at it from elsewhere
        values[name] = value
    if problems:
        raise WorkflowError(problems)
    return values


# --- hashing and environment -------------------------------------------------------------

def hash_or_none(path: str | Path) -> str | None:
    """`sha256_file`, or None for a file that is gone or unreadable (the manifest says so)."""
    try:
        return sha256_file(path)
    except OSError:
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
            "profile": ctx.config.profile}


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
    raise VisionloopError(f"{root}: no free run folder name for {base!r}")


# --- one run -------------------------------------------------------------------------------

class Recorder:
    """Runs tool calls into one run folder and keeps its manifest current. Shared by
    `run_workflow` and `replay`."""

    def __init__(self, out_dir: Path, label: str, ctx, manifest: dict):
        # absolute, like the image paths the tools return: `run --json` and the manifest name it
        self.run_dir = new_run_dir(user_path(out_dir).resolve(), label)
        self.ctx = dataclasses.replace(ctx, out_dir=self.run_dir)  # same models, same cancel flag
        self.path = self.run_dir / MANIFEST
        self.started = time.perf_counter()
        self.manifest = {"format": "visionloop-run/1", **manifest, "status": "running", "run_dir": str(self.run_dir),
                         "started": _now(), "finished": None, "seconds": None, "error": None,
                         "failed_step": None, "steps": [], "outputs": {}, "environment": environment(ctx)}
        self.write()

    def write(self) -> None:
        atomic_write_json(self.path, self.manifest)

    def call(self, step_id: str, tool_name: str, args: dict, registry) -> tuple[dict, StepValues]:
        """Run one step's tool with resolved `args`; return its record and what later steps see."""
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
            for key in ("model", "model_id", "revision", "seed", "device", "dtype"):
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

    def finish(self, status: str, error: str | None = None, failed_step: str | None = None) -> None:
        self.manifest.update(status=status, error=error, failed_step=failed_step, finished=_now(),
                             seconds=round(time.perf_counter() - self.started, 4))
        self.write()


def _input_record(wf: Workflow, values: dict, known: dict[str, str] | None = None) -> dict:
    """Each input's type and value; image inputs also their sha256 (taken from `known`, by
    input name, when the caller hashed the file already)."""
    out = {}
    for name, value in values.items():
        spec = wf.spec.inputs[name]
        entry = {"type": spec.type, "value": value}
        if spec.type == "image" and value is not None:
            entry["sha256"] = (known or {}).get(name) or hash_or_none(value)
        out[name] = entry
    return out


def _write_files(wf: Workflow, run_dir: Path, scope: Scope) -> list[str]:
    """The workflow's sidecar `files:`: NAME.txt gets text, NAME.json gets JSON."""
    from agent.workflows.refs import as_text

    written = []
    for name, template in wf.spec.files.items():
        path = confined_path(run_dir, name)  # validated already; checked again after resolving links
        value = resolve(template, scope)
        if name.endswith(".json"):
            atomic_write_json(path, value)
        else:
            atomic_write_bytes(path, (as_text(value).rstrip("\n") + "\n").encode())
        written.append(str(path))
    return written


def mark_interrupted(run_dir: str | Path, reason: str = "interrupted: the process ended during the run") -> bool:
    """Rewrite a run folder's manifest that still says "running" (its process was killed) to
    "interrupted", atomically. True when it was rewritten; a missing, unreadable or finished
    manifest is left as it is."""
    import json

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
    atomic_write_json(path, manifest)
    return True


def run_workflow(wf: Workflow, inputs: dict[str, Any], ctx, registry, out_dir: Path,
                 on_run_dir: Callable[[Path], None] | None = None,
                 input_hashes: dict[str, str] | None = None) -> WorkflowOutcome:
    """Run `wf` once with `inputs`. A failed step gives a `failed` outcome (and manifest), never
    an exception; bad inputs raise `WorkflowError` before anything loads or is written;
    `Cancelled` propagates after the manifest records it. `on_run_dir(path)` is told the run
    folder as soon as it exists (the watcher records it, to mark it if the process dies).
    `input_hashes` ({input name: sha256}) are image inputs the caller has hashed already
    (the watcher, to claim the file): the manifest records them instead of hashing again."""
    # 1. Inputs first: nothing is written and nothing loads when they are wrong.
    values = check_inputs(wf, inputs)
    label = wf.name
    images = [values[n] for n in wf.image_inputs() if values.get(n)]
    if images:
        label += "-" + Path(images[0]).stem
    # 2. The run folder and a manifest that says "running".
    rec = Recorder(out_dir, label, ctx, {
        "workflow": {"name": wf.name, "file": str(wf.path) if wf.path else None, "sha256": wf.sha256,
                     "text": wf.text},
        "inputs": _input_record(wf, values, input_hashes)})
    if on_run_dir is not None:
        on_run_dir(rec.run_dir)
    scope = Scope(inputs=values)
    outcome = WorkflowOutcome(workflow=wf.name, status="ok", run_dir=rec.run_dir, manifest=rec.path,
                              steps=rec.manifest["steps"])
    # 3. The steps, in order; the first failure stops the run.
    try:
        for step in wf.spec.steps:
            try:
                args = resolve(step.with_, scope)
            except RefError as exc:
                rec.manifest["steps"].append({"id": step.id, "tool": step.tool, "args": None, "status": "failed",
                                              "error": str(exc)})
                outcome.status, outcome.error, outcome.failed_step = "failed", str(exc), step.id
                break
            record, scope.steps[step.id] = rec.call(step.id, step.tool, args, registry)
            if record["status"] != "ok":
                outcome.status, outcome.error, outcome.failed_step = "failed", record["error"], step.id
                break
    except Cancelled:
        rec.finish("failed", "cancelled", rec.manifest["steps"][-1]["id"] if rec.manifest["steps"] else None)
        raise
    # 4. Outputs and sidecar files (as much as can be resolved when a step failed).
    for name, template in wf.spec.outputs.items():
        try:
            outcome.outputs[name] = resolve(template, scope)
        except RefError:
            continue
    atomic_write_json(rec.run_dir / OUTPUTS, outcome.outputs)
    rec.manifest["outputs"] = outcome.outputs
    if outcome.ok and wf.spec.files:
        try:
            rec.manifest["files"] = _write_files(wf, rec.run_dir, scope)
        except (RefError, VisionloopError, OSError) as exc:
            outcome.status, outcome.error = "failed", f"files: {exc}"
    # 5. The final manifest.
    rec.finish(outcome.status, outcome.error, outcome.failed_step)
    return outcome
