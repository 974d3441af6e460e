"""Batch runs: an image input given a folder or a glob runs the workflow once per image.

The models load once (every item runs on the same `Context`); a failed item is recorded and
the batch goes on; the summary counts what happened. Each item is an ordinary run with its own
run folder and manifest.
"""

from __future__ import annotations

import glob
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
    input: str
    status: str
    outputs: dict = field(default_factory=dict)
    error: str | None = None
    manifest: str | None = None
    run_dir: str | None = None

    def to_json(self) -> dict:
        return {"input": self.input, "status": self.status, "outputs": self.outputs, "error": self.error,
                "manifest": self.manifest}


@dataclass
class BatchOutcome:
    """Every file of the batch, in order: "ok", "failed", "interrupted" (the run Ctrl-C stopped)
    or "skipped" (not run, because the batch was interrupted)."""

    workflow: str
    items: list[BatchItem]

    @property
    def interrupted(self) -> bool:
        return any(i.status == "interrupted" for i in self.items)

    @property
    def summary(self) -> dict:
        ok = sum(1 for i in self.items if i.status == "ok")
        skipped = sum(1 for i in self.items if i.status == "skipped")
        return {"total": len(self.items), "ok": ok, "failed": len(self.items) - ok - skipped, "skipped": skipped}

    @property
    def status(self) -> str:
        if self.interrupted:
            return "interrupted"
        return "ok" if all(i.status == "ok" for i in self.items) else "failed"

    def to_json(self) -> dict:
        """Exactly what `visionloop run --json` prints for a batch."""
        return {"workflow": self.workflow, "status": self.status, "items": [i.to_json() for i in self.items],
                "summary": self.summary}


def run_batch(wf: Workflow, inputs: dict[str, Any], name: str, files: list[Path],
              run_one: Callable[[dict[str, Any]], WorkflowOutcome], progress: bool = False) -> BatchOutcome:
    """Run `run_one(inputs)` once per file (the file given as input `name`), continuing past
    failures. `run_one` decides where it runs (the CLI hands it to the loop). Ctrl-C (a
    `KeyboardInterrupt`, or `RunInterrupted` naming the run folder) ends the batch: the outcome
    then has that file "interrupted" and the files after it "skipped", so that the caller can
    still say what was done."""
    items: list[BatchItem] = []

    def one(path: Path) -> None:
        try:
            out = run_one({**inputs, name: str(path)})
            items.append(BatchItem(str(path), out.status, out.outputs, out.error, str(out.manifest),
                                   str(out.run_dir)))
        except VisionloopError as exc:  # e.g. the file vanished before its turn
            items.append(BatchItem(str(path), "failed", error=str(exc)))
        except KeyboardInterrupt as exc:
            run_dir = getattr(exc, "run_dir", None)
            items.append(BatchItem(str(path), "interrupted", error="interrupted (Ctrl-C)",
                                   manifest=str(Path(run_dir) / MANIFEST) if run_dir else None, run_dir=run_dir))
            items.extend(BatchItem(str(p), "skipped", error="not run: the batch was interrupted")
                         for p in files[len(items):])
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
