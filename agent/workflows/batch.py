"""Batch runs: an image input given a folder or a glob runs the workflow once per image.

The models load once (every item runs on the same `Context`); a failed item is recorded and
the batch goes on; the summary counts what happened. Each item is an ordinary run with its own
run folder and manifest. A file whose earlier run finished ok is skipped (`resume.py`). The
same items, outcome and progress bar serve the batch on Ray (`ray_engine.py`), which runs the
items on actors instead of `run_one`.
"""

from __future__ import annotations

import glob
import json
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from visionloop.errors import VisionloopError
from visionloop.images import IMAGE_SUFFIXES
from visionloop.paths import user_path
from visionloop.workflows.engine import WorkflowOutcome
from visionloop.workflows.schema import MANIFEST
from visionloop.workflows.validate import Workflow, WorkflowError

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")  # two letters at least: C:\\ is a path


def _is_pattern(value: str) -> bool:
    return any(c in value for c in "*?[")


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:  # e.g. a name too long: not a folder; `check_inputs` says what it is
        return False


def batch_input(wf: Workflow, inputs: dict[str, Any], notes: list[str] | None = None) -> tuple[str, list[Path]] | None:
    """`(input name, files)` when an image input names a folder or a glob, else None. A URL
    (s3://, gs://, https://) is refused: files are read at paths (mount a bucket to use one).
    A folder takes the pictures directly in it; subfolders (of a folder, or matched by a glob)
    are left out, and `notes` (when given) gets a line saying so."""
    batched = []
    for name in wf.image_inputs():
        value = inputs.get(name)
        if isinstance(value, str) and _URL.match(value):
            raise WorkflowError(f"{value}: input {name!r}: a URL is not read directly; mount the bucket or share "
                                "at a path and give that (see docs/scaling.md)")
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
            with os.scandir(folder) as listing:  # the kind of each entry comes with the listing
                entries = [e for e in listing if not e.name.startswith(".")]
            files = [Path(e.path) for e in entries if e.is_file() and Path(e.name).suffix.lower() in IMAGE_SUFFIXES]
            folders = sum(1 for e in entries if e.is_dir())
        except OSError as exc:  # e.g. a folder without read permission
            raise WorkflowError(f"{value}: cannot list the folder for input {name!r}: {exc.strerror or exc}") from None
        left_out = (f"{folders} subfolder{'s' if folders != 1 else ''} left out (a folder input takes the pictures "
                    f"directly in it; for those in subfolders too give a glob: '{name}={folder / '**' / '*.jpg'}')")
    else:
        matched = [Path(p) for p in glob.glob(value, recursive=True)]
        files = [p for p in matched if p.is_file()]
        folders = sum(1 for p in matched if _is_dir(p))
        left_out = (f"{folders} folder{'s' if folders != 1 else ''} it matches left out (a glob takes the files "
                    "it matches, and a folder is not read through: end the glob in the files, e.g. *.jpg)")
    left_out = left_out if folders else ""
    if not files:
        raise WorkflowError(f"{value}: no images found for input {name!r} "
                            f"(a folder takes {', '.join(IMAGE_SUFFIXES)}){'; ' + left_out if left_out else ''}")
    if left_out and notes is not None:
        notes.append(f"note: {value}: {left_out}")
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
    status "ok", "failed", "interrupted" (the run Ctrl-C stopped), "not_run" (the batch was
    interrupted before its turn; `error` says so) or "skipped": an earlier run of the same file
    finished ok (`resumed`: no error, `manifest` and `run_dir` name that run, `outputs` and
    `steps` are its own; see `visionloop.workflows.resume`); `file` the input file (None for a
    run without one)."""

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
    def of(cls, outcome: WorkflowOutcome, file: str | None = None) -> BatchItem:
        return cls(file, outcome.status, outcome.outputs, outcome.error,
                   str(outcome.manifest) if outcome.manifest else None,
                   str(outcome.run_dir) if outcome.run_dir else None, outcome.steps, outcome.workflow,
                   outcome.failed_step)

    @classmethod
    def interrupted(cls, workflow: str, file: str | None, run_dir: str | None) -> BatchItem:
        """The run Ctrl-C stopped: its steps as its manifest recorded them (none without one)."""
        manifest = Path(run_dir) / MANIFEST if run_dir else None
        try:
            steps = json.loads(manifest.read_text(encoding="utf-8")).get("steps") or [] if manifest else []
        except (OSError, ValueError, AttributeError):
            steps = []
        return cls(file, "interrupted", error="interrupted (Ctrl-C)", manifest=str(manifest) if manifest else None,
                   run_dir=run_dir, steps=steps if isinstance(steps, list) else [], workflow=workflow)

    @property
    def resumed(self) -> bool:
        """Skipped because an earlier run of this file finished ok."""
        return self.status == "skipped" and self.error is None and self.manifest is not None

    def to_json(self) -> dict:
        """Exactly the line `visionloop run --json` prints for this run."""
        return {"workflow": self.workflow, "file": self.file, "status": self.status, "outputs": self.outputs,
                "steps": self.steps, "manifest": self.manifest, "error": self.error, "failed_step": self.failed_step}


#: the statuses a batch counts, in the order its summary shows them
STATUSES = ("ok", "failed", "interrupted", "skipped", "not_run")


@dataclass
class BatchOutcome:
    """Every file of the batch, in order (see `BatchItem` for their statuses)."""

    workflow: str
    items: list[BatchItem]
    stopped: bool = False  # Ctrl-C ended it where no single run was stopped (on Ray: items left unsettled)

    @property
    def interrupted(self) -> bool:
        return self.stopped or any(i.status == "interrupted" for i in self.items)

    @property
    def summary(self) -> dict:
        return {"total": len(self.items), **{s: sum(1 for i in self.items if i.status == s) for s in STATUSES}}

    @property
    def status(self) -> str:
        if self.interrupted:
            return "interrupted"
        return "ok" if all(i.status == "ok" or i.resumed for i in self.items) else "failed"


class BatchProgress:
    """The batch's bar on stderr, on a terminal only (else it does nothing): items settled of
    all, how many failed, items per second and the time left. Shared by both engines."""

    def __init__(self, title: str, total: int, enabled: bool):
        self.title, self.total, self.failed = title, total, 0
        self.enabled = enabled and sys.stderr.isatty()
        self._bar = self._task = None

    def __enter__(self) -> Self:
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                ProgressColumn,
                TextColumn,
                TimeRemainingColumn,
            )

            class Rate(ProgressColumn):
                def render(self, task):
                    return f"{task.speed:.2f}/s" if task.speed else "-/s"

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[failed]} failed"), Rate(), TimeRemainingColumn(),
                                 transient=True)
            self._bar.__enter__()
            self._task = self._bar.add_task(self.title, total=self.total, failed=0)
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def working_on(self, name: str) -> None:
        if self._bar is not None:
            self._bar.update(self._task, description=f"{self.title}: {name}")

    def advance(self, item: BatchItem) -> None:
        self.failed += item.status in ("failed", "interrupted")
        if self._bar is not None:
            self._bar.update(self._task, advance=1, failed=self.failed)


def not_run(wf: Workflow, file: str) -> BatchItem:
    """A file the batch did not get to because it was interrupted."""
    return BatchItem(file, "not_run", error="not run: the batch was interrupted", workflow=wf.name)


def run_batch(wf: Workflow, inputs: dict[str, Any], name: str, files: list[Path],
              run_one: Callable[[dict[str, Any]], WorkflowOutcome], progress: bool = False,
              on_item: Callable[[BatchItem], None] | None = None,
              done: dict[str, BatchItem] | None = None) -> BatchOutcome:
    """Run `run_one(inputs)` once per file (the file given as input `name`), continuing past
    failures. `run_one` decides where it runs (the CLI hands it to the loop). A file in `done`
    (`visionloop.workflows.resume.finished_runs`) is not run: its item is the one given there.
    Ctrl-C (a `KeyboardInterrupt`, or `RunInterrupted` naming the run folder) ends the batch:
    the outcome then has that file "interrupted" and the files after it "not_run", so that the
    caller can still say what was done. `on_item(item)` hears of each item as it is settled,
    in order."""
    items: list[BatchItem] = []
    done = done or {}

    def add(item: BatchItem) -> None:
        items.append(item)
        if on_item is not None:
            on_item(item)

    def one(path: Path) -> None:
        if str(path) in done:
            add(done[str(path)])
            return
        try:
            add(BatchItem.of(run_one({**inputs, name: str(path)}), str(path)))
        except VisionloopError as exc:  # e.g. the file vanished before its turn
            add(BatchItem(str(path), "failed", error=str(exc), workflow=wf.name))
        except KeyboardInterrupt as exc:
            add(BatchItem.interrupted(wf.name, str(path), getattr(exc, "run_dir", None)))
            for p in files[len(items):]:
                add(done.get(str(p)) or not_run(wf, str(p)))
            raise

    with BatchProgress(wf.name, len(files), progress) as bar:
        try:
            for path in files:
                bar.working_on(path.name)
                one(path)
                bar.advance(items[-1])
        except KeyboardInterrupt:
            pass
    return BatchOutcome(wf.name, items)
