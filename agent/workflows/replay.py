"""Replay a run from its manifest: the same resolved tool calls, in a new run folder, then a
comparison with what the original run produced.

Each step's recorded arguments are used as they were, with two changes that keep the calls the
same: an image argument naming an earlier step's image gets that step's new image, and a seed
the tool picked at random is passed explicitly. Images are compared by their decoded pixels
(PNG metadata holds paths and timings that differ between runs), text by its exact value.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.errors import Cancelled, VisionloopError
from agent.workflows.engine import Recorder, hash_or_none
from agent.paths import user_path

SUPPORTED = "visionloop-run/1"


@dataclass
class ReplayOutcome:
    manifest: Path  # the new run's manifest
    original: Path
    run_dir: Path
    status: str  # "ok" when every call ran
    identical: bool
    differences: list[str] = field(default_factory=list)
    steps: list[dict] = field(default_factory=list)
    error: str | None = None  # why the replay failed (for an identical replay: why the original failed too)
    failed_step: str | None = None

    def to_json(self) -> dict:
        return {"replay_of": str(self.original), "status": self.status, "identical": self.identical,
                "differences": self.differences, "steps": self.steps, "manifest": str(self.manifest),
                "error": self.error, "failed_step": self.failed_step}


def read_manifest(path: str | Path) -> dict:
    p = user_path(path)
    if p.is_dir():
        p = p / "manifest.json"
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise VisionloopError(f"{p}: manifest not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise VisionloopError(f"{p}: not a readable run manifest: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != SUPPORTED or not isinstance(data.get("steps"), list):
        raise VisionloopError(f"{p}: not a visionloop run manifest (expected format {SUPPORTED!r})")
    return data


def _swap_paths(value: Any, mapping: dict[str, str]) -> Any:
    if isinstance(value, str):
        return mapping.get(value, value)
    if isinstance(value, list):
        return [_swap_paths(v, mapping) for v in value]
    return value


def replay(manifest_path: str | Path, ctx, registry, out_dir: Path) -> ReplayOutcome:
    """Re-run the calls recorded in `manifest_path`; report whether the results are identical."""
    original_path = user_path(manifest_path)
    old = read_manifest(original_path)
    differences: list[str] = []
    # 1. The inputs must still be the same files for the comparison to mean anything.
    for name, entry in (old.get("inputs") or {}).items():
        if isinstance(entry, dict) and entry.get("sha256"):
            now = hash_or_none(entry["value"])
            if now != entry["sha256"]:
                differences.append(f"input {name!r} ({entry['value']}) "
                                   f"{'is missing' if now is None else 'has changed since the run'}")
    wf = old.get("workflow") or {}
    rec = Recorder(out_dir, f"replay-{wf.get('name', 'run')}", ctx,
                   {"workflow": wf, "inputs": old.get("inputs"), "replay_of": str(original_path)})
    # 2. The same calls, with earlier steps' images swapped for the new ones.
    mapping: dict[str, str] = {}
    status, error, failed_step = "ok", None, None
    try:
        for step in old["steps"]:
            if step.get("args") is None:
                differences.append(f"step {step.get('id')!r}: not run originally ({step.get('error')})")
                status, error, failed_step = "failed", step.get("error"), step.get("id")
                break
            tool = registry.tools.get(step["tool"])
            args = dict(step["args"])
            for name, value in args.items():  # only image arguments: a prompt keeps its exact text
                inp = tool.input(name) if tool is not None else None
                if inp is not None and inp.type == "image":
                    args[name] = _swap_paths(value, mapping)
            if tool is not None and tool.input("seed") and args.get("seed") is None and step.get("seed") is not None:
                args = {**args, "seed": step["seed"]}
            record, values = rec.call(step["id"], step["tool"], args, registry)
            for before, after in zip(step.get("images") or [], values.images):
                mapping[before] = after
            differences += _compare(step, record)
            if record["status"] != "ok":
                status, error, failed_step = "failed", record.get("error"), step["id"]
                break
    except Cancelled:
        rec.finish("failed", "cancelled")
        raise
    if status == "ok" and old.get("status") != "ok":
        # the original stopped after its steps (e.g. writing its files); the replay cannot say more
        status, error, failed_step = "failed", old.get("error") or "the original run failed", old.get("failed_step")
    identical = not differences
    rec.manifest["replay"] = {"identical": identical, "differences": differences}
    rec.finish(status, None if status == "ok" else "; ".join(differences) or error or "a step failed",
               None if status == "ok" else failed_step)
    return ReplayOutcome(rec.path, original_path, rec.run_dir, status, identical, differences,
                         rec.manifest["steps"], error if status != "ok" else None, failed_step)


def _compare(old: dict, new: dict) -> list[str]:
    sid = old.get("id")
    out = []
    if old.get("status") != new.get("status"):
        out.append(f"step {sid!r}: status was {old.get('status')}, now {new.get('status')} ({new.get('error')})")
        return out
    if (old.get("text") or "") != (new.get("text") or ""):
        out.append(f"step {sid!r}: text differs: {old.get('text')!r} -> {new.get('text')!r}")
    before = [h.get("pixels_sha256") for h in old.get("image_hashes") or []]
    after = [h.get("pixels_sha256") for h in new.get("image_hashes") or []]
    if len(before) != len(after):
        out.append(f"step {sid!r}: {len(before)} image(s) before, {len(after)} now")
    for i, (a, b) in enumerate(zip(before, after)):
        if a != b:
            out.append(f"step {sid!r}: image {i + 1} differs in its pixels ({new['images'][i]})")
    return out
