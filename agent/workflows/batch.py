"""Batch runs: an image input given a folder or a glob runs the workflow once per image.

The models load once (every item runs on the same `Context`); a failed item is recorded and
the batch goes on; the summary counts what happened. Each item is an ordinary run with its own
run folder and manifest.
"""

from __future__ import annotations

import glob
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from visionloop.errors import VisionloopError
from visionloop.images import IMAGE_SUFFIXES
from visionloop.workflows.engine import WorkflowOutcome
from visionloop.workflows.schema import MANIFEST
from visionloop.workflows.validate import Workflow, WorkflowError
from visionloop.paths import user_path


def _is_pattern(value: str) -> bool:
    return any(c in value for c in "*?[")


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:  # e.g. a name too long: not a folder; `check_inputs` says what it is
        return False


def batch_input(wf: Workflow, inputs: dict[str, Any]) -> tuple[str, list[Path]] | None:
    """`(input name, files)` when an image input names a folder or a glob, else None."""
    batched = []
    for name in wf.image_inputs():
        value = inputs.get(name)
        # a blank value is no folder (it would be "."): `check_inputs` refuses it
        if isinstance(value, str) and value.strip() and (_is_dir(user_path(value, f"input {name!r}"))
                                                          or _is_pattern(value)):
            batched.append(name)
    if not batched:
        return None
    if len(batched) > 1:
        raise WorkflowError(f"{wf.source}: only one image input can be a folder or glob (got {', '.join(batched)})")
    name = batched[0]
    folder = user_path(inputs[name], f"input {name!r}")
    value = str(folder)
    if _is_dir(folder):
        try:
            files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                     and not p.name.startswith(".")]
        except OSError as exc:  # e.g. a folder without read permission
            raise WorkflowError(f"{value}: cannot list the folder for input {name!r}: {exc.strerror or exc}") from None
    else:
        files = [Path(p) for p in glob.glob(value, recursive=True) if Path(p).is_file()]
    if not files:
        raise WorkflowError(f"{value}: no images found for input {name!r} "
                            f"(a folder takes {', '.join(IMAGE_SUFFIXES)})")
    return name, sorted(files)


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during one run: still a `KeyboardInterrupt`, with the run folder when it had one
    (its manifest says how the run ended)."""

    def __init__(self, run_dir: str | Path | None = None):
        super().__init__()
        self.run_dir = str(run_dir) if run_dir else None


@dataclass
class BatchItem:
    """One run's outcome as `visionloop run --json` prints it, a batch item or a single run:
    status "ok", "failed", "interrupted" (the run Ctrl-C stopped) or "skipped" (not run,
    because the batch was interrupted); `file` the input file (None for a run without one)."""

    file: str | None
    status: str
    outputs: dict = field(default_factory=dict)
    error: str | None = None
    manifest: str | None = None
    run_dir: str | None = None
    steps: list = field(default_factory=list)
    workflow: str = ""
    failed_step: str | None = None

    @classmethod
    def of(cls, outcome: WorkflowOutcome, file: str | None = None) -> "BatchItem":
        return cls(file, outcome.status, outcome.outputs, outcome.error,
                   str(outcome.manifest) if outcome.manifest else None,
                   str(outcome.run_dir) if outcome.run_dir else None, outcome.steps, outcome.workflow,
                   outcome.failed_step)

    @classmethod
    def interrupted(cls, workflow: str, file: str | None, run_dir: str | None) -> "BatchItem":
        """The run Ctrl-C stopped: its steps as its manifest recorded them (none without one)."""
        manifest = Path(run_dir) / MANIFEST if run_dir else None
        try:
            steps = json.loads(manifest.read_text(encoding="utf-8")).get("steps") or [] if manifest else []
        except (OSError, ValueError, AttributeError):
            steps = []
        return cls(file, "interrupted", error="interrupted (Ctrl-C)", manifest=str(manifest) if manifest else None,
                   run_dir=run_dir, steps=steps if isinstance(steps, list) else [], workflow=workflow)

    def to_json(self) -> dict:
        """Exactly the line `visionloop run --json` prints for this run."""
        return {"workflow": self.workflow, "file": self.file, "status": self.status, "outputs": self.outputs,
                "steps": self.steps, "manifest": self.manifest, "error": self.error, "failed_step": self.failed_step}


#: the statuses a batch counts, in the order its summary shows them
STATUSES = ("ok", "failed", "interrupted", "skipped")


@dataclass
class BatchOutcome:
    """Every file of the batch, in order (see `BatchItem` for their statuses)."""

    workflow: str
    items: list[BatchItem]

    @property
    def interrupted(self) -> bool:
        return any(i.status == "interrupted" for i in self.items)

    @property
    def summary(self) -> dict:
        return {"total": len(self.items), **{s: sum(1 for i in self.items if i.status == s) for s in STATUSES}}

    @property
    def status(self) -> str:
        if self.interrupted:
            return "interrupted"
        return "ok" if all(i.status == "ok" for i in self.items) else "failed"


def run_batch(wf: Workflow, inputs: dict[str, Any], name: str, files: list[Path],
              run_one: Callable[[dict[str, Any]], WorkflowOutcome], progress: bool = False,
              on_item: Callable[[BatchItem], None] | None = None) -> BatchOutcome:
    """Run `run_one(inputs)` once per file (the file given as input `name`), continuing past
    failures. `run_one` decides where it runs (the CLI hands it to the loop). Ctrl-C (a
    `KeyboardInterrupt`, or `RunInterrupted` naming the run folder) ends the batch: the outcome
    then has that file "interrupted" and the files after it "skipped", so that the caller can
    still say what was done. `on_item(item)` hears of each item as it is settled, in order."""
    items: list[BatchItem] = []

    def add(item: BatchItem) -> None:
        items.append(item)
        if on_item is not None:
            on_item(item)

    def one(path: Path) -> None:
        try:
            add(BatchItem.of(run_one({**inputs, name: str(path)}), str(path)))
        except VisionloopError as exc:  # e.g. the file vanished before its turn
            add(BatchItem(str(path), "failed", error=str(exc), workflow=wf.name))
        except KeyboardInterrupt as exc:
            add(BatchItem.interrupted(wf.name, str(path), getattr(exc, "run_dir", None)))
            for p in files[len(items):]:
                add(BatchItem(str(p), "skipped", error="not run: the batch was interrupted", workflow=wf.name))
            raise

    if progress and sys.stderr.isatty():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, transient=True) as bar:
            task = bar.add_task(wf.name, total=len(files))
            try:
                for path in files:
                    bar.update(task, description=f"{wf.name}: {path.name}")
                    one(path)
                    bar.advance(task)
            except KeyboardInterrupt:
                pass
    else:
        try:
            for path in files:
                one(path)
        except KeyboardInterrupt:
            pass
    return BatchOutcome(wf.name, items)
