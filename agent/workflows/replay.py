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

from visionloop.errors import Cancelled, VisionloopError
from visionloop.paths import user_path
from visionloop.workflows.manifest import FORMAT as SUPPORTED
from visionloop.workflows.manifest import Recorder, RecordError, hash_or_none
from visionloop.workflows.schema import MANIFEST
from visionloop.yamlsource import YamlProblem, read_limited

#: A manifest holds the workflow's text (at most 1 MB) and every step's record: far below this.
MAX_MANIFEST_BYTES = 64_000_000

#: What replay reads from a manifest, by JSON type: the top level, each input, each step.
_TOP = {"workflow": ("object",), "inputs": ("object", "null"), "status": ("string", "null"),
        "error": ("string", "null"), "failed_step": ("string", "null")}
_INPUT = {"value": ("string", "number", "boolean", "array", "null"), "sha256": ("string", "null")}
_STEP = {"id": ("string",), "tool": ("string",), "args": ("object", "null"), "status": ("string",),
         "seed": ("integer", "null"), "text": ("string", "null"), "error": ("string", "null"),
         "images": ("array",), "image_hashes": ("array",)}
_JSON_TYPES = {"object": dict, "array": list, "string": str, "number": (int, float), "integer": int,
               "null": type(None)}


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
    original_status: str | None = None  # what the original manifest says ("running": it never finished)

    def to_json(self) -> dict:
        return {"replay_of": str(self.original), "status": self.status, "identical": self.identical,
                "differences": self.differences, "steps": self.steps, "manifest": str(self.manifest),
                "error": self.error, "failed_step": self.failed_step}


def _fits(value: Any, expected: tuple[str, ...]) -> bool:
    if isinstance(value, bool):  # JSON true is no number
        return "boolean" in expected
    return any(isinstance(value, _JSON_TYPES[t]) for t in expected if t in _JSON_TYPES)


def _got(value: Any) -> str:
    """What a JSON value is, for a message: "an object", "a string", "null", ..."""
    if isinstance(value, bool):
        return "a boolean"
    kind = next((t for t in ("object", "array", "string", "number", "null") if isinstance(value, _JSON_TYPES[t])), "?")
    return _a(kind)


def _a(kind: str) -> str:
    return {"null": "null", "integer": "a whole number"}.get(kind, ("an " if kind[0] in "aeio" else "a ") + kind)


def _field_problems(obj: dict, fields: dict, where: str) -> list[str]:
    return [f"{where}{'.' if where else ''}{key}: expected {' or '.join(_a(t) for t in expected)}, got {_got(obj[key])}"
            for key, expected in fields.items() if key in obj and not _fits(obj[key], expected)]


def manifest_problems(data: Any) -> list[str]:
    """What is wrong with the parts of a manifest that replay reads, each as `path: reason`."""
    if not isinstance(data, dict):
        return [f"(top): expected an object, got {_got(data)}"]
    if data.get("format") != SUPPORTED:
        return [f"format: expected {SUPPORTED!r}, got {data.get('format')!r} (not a visionloop run manifest)"]
    if not isinstance(data.get("steps"), list):
        return ["steps: " + ("missing" if "steps" not in data else f"expected an array, got {_got(data['steps'])}")]
    if not data["steps"]:  # every workflow has a step: an empty list was cut or edited away
        return ["steps: empty (no recorded call to replay)"]
    problems = _field_problems(data, _TOP, "")
    for name, entry in (data.get("inputs") or {}).items() if isinstance(data.get("inputs"), dict) else ():
        if not isinstance(entry, dict):
            problems.append(f"inputs.{name}: expected an object, got {_got(entry)}")
            continue
        problems += _field_problems(entry, _INPUT, f"inputs.{name}")
        if entry.get("sha256") and not isinstance(entry.get("value"), str):
            problems.append(f"inputs.{name}.value: expected a file path (the input has a sha256)")
    for i, step in enumerate(data["steps"]):
        where = f"steps[{i}]"
        if not isinstance(step, dict):
            problems.append(f"{where}: expected an object, got {_got(step)}")
            continue
        problems += [f"{where}.{key}: missing" for key in ("id", "tool") if key not in step]
        problems += _field_problems(step, _STEP, where)
        for j, path in enumerate(step.get("images") if isinstance(step.get("images"), list) else ()):
            if not isinstance(path, str):
                problems.append(f"{where}.images[{j}]: expected a string, got {_got(path)}")
        for j, h in enumerate(step.get("image_hashes") if isinstance(step.get("image_hashes"), list) else ()):
            if not isinstance(h, dict):
                problems.append(f"{where}.image_hashes[{j}]: expected an object, got {_got(h)}")
    return problems


def read_manifest(path: str | Path) -> dict:
    """The manifest at `path` (or in the run folder `path`), checked as far as replay reads it;
    a `VisionloopError` naming the file, the field and what is wrong with it otherwise."""
    if not str(path).strip():
        raise VisionloopError("replay: the manifest path is empty (give a manifest.json or its run folder)")
    p = user_path(path, "manifest")
    try:
        if p.is_dir():
            p = p / MANIFEST
    except OSError as exc:  # e.g. a name longer than the file system allows
        raise VisionloopError(f"{str(p)[:80]}: {exc.strerror or exc}") from None
    try:  # bounded, and never a FIFO or a device (`replay /dev/zero` must not read forever)
        data = json.loads(read_limited(p, MAX_MANIFEST_BYTES).decode("utf-8"))
    except FileNotFoundError:
        raise VisionloopError(f"{p}: manifest not found") from None
    except YamlProblem as exc:
        raise VisionloopError(f"{p}: not a readable run manifest: {exc.message}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise VisionloopError(f"{p}: not a readable run manifest: {exc}") from None
    problems = manifest_problems(data)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise VisionloopError(f"{p}: {problems[0]}{more}")
    return data


def _swap_paths(value: Any, mapping: dict[str, str]) -> Any:
    if isinstance(value, str):
        return mapping.get(value, value)
    if isinstance(value, list):
        return [_swap_paths(v, mapping) for v in value]
    return value


def replay(manifest_path: str | Path, ctx, registry, out_dir: Path) -> ReplayOutcome:
    """Re-run the calls recorded in `manifest_path`; report whether the results are identical."""
    old = read_manifest(manifest_path)
    original_path = user_path(manifest_path)
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
            try:
                record, values = rec.call(step["id"], step["tool"], args, registry)
            except RecordError as exc:  # the call ran, but the new manifest could not be kept
                status, error, failed_step = "failed", str(exc), step["id"]
                break
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
        why = ("the original run failed" if old.get("status") == "failed"
               else f"the original run did not finish (its status is {old.get('status')!r})")
        status, error, failed_step = "failed", old.get("error") or why, old.get("failed_step")
    identical = not differences
    rec.manifest["replay"] = {"identical": identical, "differences": differences}
    problem = rec.finish(status, None if status == "ok" else "; ".join(differences) or error or "a step failed",
                         None if status == "ok" else failed_step)
    if problem:  # the replay's own manifest could not be written: it cannot count as a success
        status, error = "failed", "; ".join(e for e in (error, problem) if e)
    return ReplayOutcome(rec.path, original_path, rec.run_dir, status, identical, differences,
                         rec.manifest["steps"], error if status != "ok" else None, failed_step, old.get("status"))


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
