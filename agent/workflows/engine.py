"""Running a workflow: check the inputs, call each step's tool in order, write the run folder.

A run folder (see `visionloop.workflows.manifest`) holds the images the steps saved, `outputs.json`,
any sidecar `files:`, and `manifest.json`: everything needed to know what happened and to
replay it (see `visionloop.workflows.replay`). A run is `ok` only when every step ran, every output
could be resolved and every record was written; otherwise it is `failed`, and its manifest and
`--json` say why.

`run_workflow` runs in the calling thread. Callers that own a `Loop` submit it as a job
(`loop.submit(lambda ctx: run_workflow(wf, inputs, ctx, registry, out))`) so that it shares
the loop's models and never runs beside another job.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from visionloop.errors import Cancelled, VisionloopError
from visionloop.images import atomic_write_bytes, atomic_write_json, confined_path
from visionloop.paths import user_path
from visionloop.values import coerce_value
from visionloop.workflows.manifest import Recorder, RecordError, hash_or_none, write_record
from visionloop.workflows.refs import RefError, Scope, resolve
from visionloop.workflows.schema import OUTPUTS
from visionloop.workflows.validate import Workflow, WorkflowError
from visionloop.workflows.values import input_as_tool_input
from visionloop.yamlsource import did_you_mean


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

    def fail(self, error: str, step: str | None = None) -> None:
        """Mark the run failed; a later problem adds to the first one's message."""
        self.status, self.error = "failed", "; ".join(e for e in (self.error, error) if e)
        self.failed_step = self.failed_step or step

    def to_json(self) -> dict:
        """Exactly what `visionloop run --json` prints."""
        return {"workflow": self.workflow, "status": self.status, "outputs": self.outputs, "steps": self.steps,
                "manifest": str(self.manifest) if self.manifest else None}


# --- inputs ----------------------------------------------------------------------------------

def check_inputs(wf: Workflow, given: dict[str, Any], hint: str = "{name}=VALUE") -> dict[str, Any]:
    """Coerce the given inputs to their declared types, fill in defaults, and refuse unknown,
    missing or empty ones, all before any model loads. Raises `WorkflowError` naming every problem.
    `hint` says how to give a missing input in the caller's syntax (the CLI: "--input {name}=VALUE";
    the default, "{name}=VALUE", also fits the chat's `/run W name=value`)."""
    problems: list[str] = []
    declared = wf.spec.inputs
    for name in given:
        if name not in declared:
            problems.append(f"{wf.source}: unknown input {name!r}{did_you_mean(name, declared)} "
                            f"(inputs: {', '.join(declared) or 'none'})")
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
            value = coerce_value(input_as_tool_input(name, spec), value)  # refuses "" and "   " too
            if spec.type == "image":
                p = user_path(value, f"input {name!r}")
                if not _is_file(p):
                    raise ValueError(f"{value}: {'is a folder, not an image file' if p.is_dir() else 'file not found'}")
                value = str(p.resolve())  # the manifest must still point at it from elsewhere
        except (ValueError, VisionloopError) as exc:  # VisionloopError: a `~user` that names no home
            problems.append(f"{wf.source}: input {name!r}: {exc}")
            continue
        values[name] = value
    if problems:
        raise WorkflowError(problems)
    return values


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError as exc:  # e.g. a name longer than the file system allows
        raise ValueError(f"{str(path)[:80]}: {exc.strerror or exc}") from None


# --- one run -------------------------------------------------------------------------------

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


def _resolve_outputs(wf: Workflow, scope: Scope, outcome: WorkflowOutcome) -> None:
    """Fill `outcome.outputs`. After a failed step, what can be resolved; after every step
    ran, an output that cannot be resolved fails the run, by name (never dropped silently)."""
    steps_ran = outcome.ok
    for name, template in wf.spec.outputs.items():
        try:
            outcome.outputs[name] = resolve(template, scope)
        except RefError as exc:
            if steps_ran:
                outcome.fail(f"outputs.{name}: {exc}")


def _write_files(wf: Workflow, run_dir: Path, scope: Scope, outcome: WorkflowOutcome) -> list[str]:
    """The workflow's sidecar `files:`: NAME.txt gets text, NAME.json gets JSON. Each file that
    cannot be resolved or written fails the run, by name; the others are still written."""
    from visionloop.workflows.refs import as_text

    written = []
    for name, template in wf.spec.files.items():
        try:
            path = confined_path(run_dir, name)  # validated already; checked again after resolving links
            value = resolve(template, scope)
            if name.endswith(".json"):
                atomic_write_json(path, value)
            else:
                atomic_write_bytes(path, (as_text(value).rstrip("\n") + "\n").encode())
            written.append(str(path))
        except OSError as exc:
            outcome.fail(f"files.{name}: cannot write {run_dir / name}: {exc.strerror or exc}")
        except (RefError, VisionloopError) as exc:
            outcome.fail(f"files.{name}: {exc}")
    return written


def run_workflow(wf: Workflow, inputs: dict[str, Any], ctx, registry, out_dir: Path,
                 on_run_dir: Callable[[Path], None] | None = None,
                 input_hashes: dict[str, str] | None = None) -> WorkflowOutcome:
    """Run `wf` once with `inputs`. A failed step, an output that cannot be resolved or a record
    that cannot be written gives a `failed` outcome (and manifest), never an exception; bad
    inputs raise `WorkflowError` before anything loads or is written, and a run folder that
    cannot be started raises a one-line `VisionloopError` (leaving no folder behind);
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
    # 3. The steps, in order; the first failure stops the run. Each is announced as it starts
    #    and ends (`ctx.report`: a terminal's stderr), not only in the result.
    say = getattr(ctx, "report", None) or (lambda line: None)
    total = len(wf.spec.steps)
    try:
        for number, step in enumerate(wf.spec.steps, 1):
            name = f"step {number}/{total} {step.id}" + (f" ({step.tool})" if step.tool != step.id else "")
            try:
                args = resolve(step.with_, scope)
            except RefError as exc:
                rec.manifest["steps"].append({"id": step.id, "tool": step.tool, "args": None, "status": "failed",
                                              "error": str(exc)})
                outcome.fail(str(exc), step.id)
                say(f"{name}: failed: {exc}")
                break
            say(f"{name}: started")
            started = time.perf_counter()
            try:
                record, scope.steps[step.id] = rec.call(step.id, step.tool, args, registry)
            except RecordError as exc:  # the step ran, but its record could not be kept: stop here
                outcome.fail(str(exc), step.id)
                say(f"{name}: failed: {exc}")
                break
            took = f"{time.perf_counter() - started:.1f} s"
            if record["status"] != "ok":
                outcome.fail(record["error"], step.id)
                say(f"{name}: failed after {took}: {record['error']}")
                break
            say(f"{name}: done in {took}")
    except Cancelled:
        say("cancelled")
        rec.finish("failed", "cancelled", rec.manifest["steps"][-1]["id"] if rec.manifest["steps"] else None)
        raise
    # 4. Outputs and sidecar files (as much as can be resolved when a step failed).
    steps_ran = outcome.ok
    _resolve_outputs(wf, scope, outcome)
    try:
        write_record(rec.run_dir / OUTPUTS, outcome.outputs)
    except RecordError as exc:
        outcome.fail(str(exc))
    rec.manifest["outputs"] = outcome.outputs
    if steps_ran and wf.spec.files:
        rec.manifest["files"] = _write_files(wf, rec.run_dir, scope, outcome)
    # 5. The final manifest (marked failed in place when even that cannot be written).
    problem = rec.finish(outcome.status, outcome.error, outcome.failed_step)
    if problem:
        outcome.fail(problem)
    return outcome
