"""Resuming a batch: the items whose run already finished ok are not run again.

Rerunning the same `visionloop run WORKFLOW --input image=FOLDER` (on either engine) looks in
the output folder for an earlier run of each file and skips the file when that run finished
`ok` with the same workflow text, the same inputs (the file's sha256 included: a picture
that changed runs again), and the same profile, models, device and dtype settings. The item
then says "skipped" and points at the earlier run's manifest; `--rerun` runs every file.

Only folders whose name fits the file (a run folder is named `DATE-TIME-WORKFLOW-STEM`) are
read, so that a folder of a million runs costs one directory listing and one manifest per file.
The same reading tells, after a Ctrl-C on Ray, which items finished on the workers although
their results never reached the driver (`runs_since`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from visionloop.images import safe_stem
from visionloop.paths import resolved_path
from visionloop.workflows.batch import BatchItem
from visionloop.workflows.manifest import hash_or_none, mark_interrupted
from visionloop.workflows.schema import MANIFEST
from visionloop.workflows.validate import Workflow

#: a run folder's name: the date and time (`new_run_dir`), the label, and "-N" when the name was taken
_RUN_DIR = re.compile(r"^\d{8}-\d{6}-(?P<label>.+?)(?:-\d+)?$")
_STAMP = len("20260101-120000-")


def run_label(wf: Workflow, values: dict[str, Any]) -> str:
    """The label `run_workflow` gives a run folder: the workflow's name and its first image's stem."""
    images = [values[n] for n in wf.image_inputs() if values.get(n)]
    return wf.name + ("-" + Path(images[0]).stem if images else "")


def _folders_by_label(out_dir: Path) -> dict[str, list[Path]]:
    """The run folders under `out_dir`, by the label their names carry (a label may itself end
    in "-N": both readings are kept), newest first."""
    found: dict[str, list[Path]] = {}
    try:
        entries = sorted((e for e in resolved_path(out_dir).iterdir() if _RUN_DIR.match(e.name)),
                         key=lambda e: e.name, reverse=True)
    except OSError:  # no output folder yet: nothing ran
        return found
    for entry in entries:
        whole = entry.name[_STAMP:]
        labels = {whole, _RUN_DIR.match(entry.name)["label"]}
        for label in labels:
            found.setdefault(label, []).append(entry)
    return found


def _read(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _same_run(manifest: dict, wf: Workflow, values: dict[str, Any], config) -> bool:
    """Did this manifest's run finish ok doing exactly what `values` under `config` would do?"""
    if manifest.get("status") != "ok" or (manifest.get("workflow") or {}).get("sha256") != wf.sha256:
        return False
    env = manifest.get("environment") or {}
    if (env.get("profile") != config.profile
            or env.get("profile_settings") != config.active.model_dump(mode="json")
            or env.get("settings") != {"device": config.device, "dtype": config.dtype}):
        return False
    recorded = manifest.get("inputs") or {}
    if set(recorded) != set(values):
        return False
    for name, value in values.items():
        entry = recorded.get(name) or {}
        if entry.get("value") != value:
            return False
        if (wf.spec.inputs[name].type == "image" and value is not None
                and (entry.get("sha256") is None or entry.get("sha256") != hash_or_none(value))):
            return False  # the picture changed since
    return True


def finished_runs(wf: Workflow, values_of: dict[str, dict[str, Any]], out_dir: Path, config) -> dict[str, BatchItem]:
    """`{file: skipped item}` for each file (keys of `values_of`, which holds each file's checked
    inputs) whose latest matching run under `out_dir` finished ok."""
    folders = _folders_by_label(out_dir)
    done: dict[str, BatchItem] = {}
    for file, values in values_of.items():
        for folder in folders.get(safe_stem(run_label(wf, values), "run", 50), ()):
            manifest = _read(folder / MANIFEST)
            if manifest is not None and _same_run(manifest, wf, values, config):
                done[file] = BatchItem(file, "skipped", outputs=manifest.get("outputs") or {},
                                       manifest=str(folder / MANIFEST), run_dir=str(folder),
                                       steps=manifest.get("steps") or [], workflow=wf.name)
                break
    return done


def runs_since(wf: Workflow, inputs: dict[str, Any], name: str, paths: dict[str, str], out_dir: Path, since: str,
               mark: bool = False) -> dict[str, BatchItem]:
    """After a Ctrl-C on Ray: `{file: item}` for each file (keys of `paths`, the path its run read
    as input `name`, with the other `inputs`) whose run under `out_dir` started at `since` (an
    ISO time, as manifests write it) or later. A finished run gives its own status ("ok",
    "failed"); one still "running" was stopped with its worker: "interrupted" (`mark`: its
    manifest is rewritten to say so, for a Ray this process shut down)."""
    folders = _folders_by_label(out_dir)
    found: dict[str, BatchItem] = {}
    for file, path in paths.items():
        for folder in folders.get(safe_stem(run_label(wf, {**inputs, name: path}), "run", 50), ()):
            manifest = _read(folder / MANIFEST)
            if (manifest is None or str(manifest.get("started") or "") < since
                    or (manifest.get("workflow") or {}).get("sha256") != wf.sha256
                    or ((manifest.get("inputs") or {}).get(name) or {}).get("value") != path):
                continue
            status = manifest.get("status")
            if status in ("ok", "failed"):
                found[file] = BatchItem(file, status, outputs=manifest.get("outputs") or {},
                                        error=manifest.get("error"), manifest=str(folder / MANIFEST),
                                        run_dir=str(folder), steps=manifest.get("steps") or [], workflow=wf.name,
                                        failed_step=manifest.get("failed_step"))
            else:
                if mark:
                    mark_interrupted(folder, "interrupted: the batch was stopped (Ctrl-C) during the run")
                found[file] = BatchItem.interrupted(wf.name, file, str(folder))
            break
    return found
