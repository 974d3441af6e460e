"""Watch rules made ready to run: folders resolved and checked, the workflow loaded, the rule's
fingerprint, the ledger opened. Every mistake a user can make in a rule (a `~user` that names no
home, a folder that is not there, a `failed` or `processed` path that is a regular file, an
output inside a watched folder) stops the watcher here, before anything runs, with one line
naming the path and the rule.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from visionloop.config import WatchRule
from visionloop.errors import VisionloopError
from visionloop.images import ensure_output_dir
from visionloop.paths import resolved_path
from visionloop.watch.ledger import Ledger, WatchError
from visionloop.watch.names import shown
from visionloop.watch.stability import ceiling_for


@dataclass
class RuleState:
    """A rule with everything resolved: absolute folders, the loaded workflow, its ledger."""

    rule: WatchRule
    folder: Path
    output: Path
    failed: Path
    processed: Path
    workflow: Any
    ledger: Ledger
    settle: float
    ceiling: float
    fp: str = ""  # the rule's fingerprint: part of every ledger key
    identity: tuple[int, int] | None = None  # (device, inode) of the watched folder, to notice it replaced
    missing: bool = False  # the watched folder is gone (warned once)

    @property
    def name(self) -> str:
        return self.rule.name


def inside(path: Path, folder: Path) -> bool:
    return path == folder or path.is_relative_to(folder)


def folder_identity(folder: Path) -> tuple[int, int] | None:
    """(device, inode) of a real folder (not a link), or None when there is none at `folder`."""
    try:
        st = os.lstat(folder)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None


def fingerprint(workflow, rule: WatchRule) -> str:
    """What a file's result depends on besides its bytes: the workflow's content (its steps and
    their settings) and the input the file fills. Another workflow means another ledger key."""
    content = getattr(workflow, "sha256", None) or hashlib.sha256(str(getattr(workflow, "text", "")).encode()).hexdigest()
    blob = json.dumps({"workflow": content, "input": rule.input}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _a_folder_or_nothing(path: Path, what: str, rule: WatchRule, setting: str) -> None:
    """`failed/` and `processed/` are made when first needed; something else already there is refused."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise WatchError(f"{shown(path)}: watch rule {rule.name!r}: cannot use it as the {what} folder "
                         f"({exc.strerror or exc})") from None
    if stat.S_ISLNK(st.st_mode):
        kind = "a symbolic link (the watcher never follows links)"
    elif not stat.S_ISDIR(st.st_mode):
        kind = "a regular file" if stat.S_ISREG(st.st_mode) else "not a folder"
    else:
        return
    raise WatchError(f"{shown(path)}: watch rule {rule.name!r}: the {what} folder is {kind}; "
                     f"move it away or set `{setting}` in the rule")


def _image_input(wf, rule: WatchRule) -> None:
    """The input the watched file fills must exist and take an image (a text input would get
    the file's path as its text)."""
    inputs = getattr(getattr(wf, "spec", None), "inputs", None)
    if inputs is None:
        return
    if rule.input not in inputs:
        raise WatchError(f"watch rule {rule.name!r}: workflow {rule.workflow!r} has no input {rule.input!r} "
                         f"(inputs: {', '.join(inputs) or 'none'})")
    kind = getattr(inputs[rule.input], "type", "image")
    if kind != "image":
        images = [name for name, spec in inputs.items() if getattr(spec, "type", None) == "image"]
        hint = f"set `input` to one of: {', '.join(images)}" if images else "the workflow has no image input"
        raise WatchError(f"watch rule {rule.name!r}: input {rule.input!r} of workflow {rule.workflow!r} is not an "
                         f"image (type {kind}); {hint}")


def resolve_rules(rules: list[WatchRule], config, registry, load_workflow,
                  reprocess: bool = False) -> tuple[list[RuleState], dict]:
    """RuleStates for `rules` and the ledgers they opened ({output: Ledger}); on any error the
    ledgers opened so far are closed (their locks released) before it propagates. A lost
    ledger is refused unless `reprocess` (every file runs again anyway)."""
    names = [r.name for r in rules]
    if len(set(names)) != len(names):
        raise WatchError(f"watch rule names must be unique (got {', '.join(map(repr, names))})")
    ledgers: dict[Path, Ledger] = {}
    states: list[RuleState] = []
    try:
        folders = []
        for rule in rules:
            folder = resolved_path(rule.folder, f"watch rule {rule.name!r}: folder")
            if not folder.is_dir():
                what = "not a folder" if folder.exists() else "folder not found"
                raise WatchError(f"{shown(rule.folder)}: watch rule {rule.name!r}: {what}")
            folders.append(folder)
        for rule, folder in zip(rules, folders):
            output = resolved_path(rule.output, f"watch rule {rule.name!r}: output")
            for other in folders:  # outputs inside a watched folder would be taken as inputs
                if inside(output, other):
                    raise WatchError(f"{shown(rule.output)}: watch rule {rule.name!r}: the output folder is inside "
                                     f"the watched folder {shown(other)}; choose an output outside every watched folder")
            if rule.failed:
                failed = resolved_path(rule.failed, f"watch rule {rule.name!r}: failed")
            else:
                failed = folder / "failed"
            processed = folder / "processed"
            if failed == folder:  # failures would land back among the inputs
                raise WatchError(f"{shown(rule.failed)}: watch rule {rule.name!r}: the failed folder is the watched "
                                 f"folder itself; choose another `failed:` folder")
            _a_folder_or_nothing(failed, "failed", rule, "failed:")
            if rule.on_success == "move":
                _a_folder_or_nothing(processed, "processed", rule, "on_success: keep")
            wf = load_workflow(rule.workflow, config, registry)
            _image_input(wf, rule)
            try:  # e.g. a path under a regular file: one line naming the folder and the rule
                ensure_output_dir(output)
            except VisionloopError as exc:
                raise WatchError(f"{exc} (watch rule {rule.name!r})") from None
            if output not in ledgers:
                ledgers[output] = Ledger(output, lost_ok=reprocess)
            fp = fingerprint(wf, rule)
            ledgers[output].adopt_legacy(rule.name, fp)
            states.append(RuleState(rule, folder, output, failed, processed, wf, ledgers[output], rule.settle,
                                    ceiling_for(rule.settle, rule.ceiling), fp, folder_identity(folder)))
    except BaseException:
        for ledger in ledgers.values():
            ledger.close()
        raise
    return states, ledgers
