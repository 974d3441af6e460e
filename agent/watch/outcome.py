"""Recording what happened to one file, and putting the input where it belongs.

Done: the input stays, or moves to processed/ (`on_success: move`). Failed: the input moves to
failed/ (never overwriting: `a (1).png`) with `a.png.error.json` beside it. Only a regular file
that really lies inside the watched folder is ever moved: never a symbolic link, never a file
reached through a linked folder. When the move cannot be made (failed/ is a regular file, no
permission) the outcome is still recorded and the file stays where it is, so no ledger row is
left `running`; the error record is never written into the watched folder.
"""

from __future__ import annotations

import errno
import logging
import os
import platform
import shutil
import stat
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from visionloop.images import atomic_write_json, sha256_file
from visionloop.watch.ledger import Key
from visionloop.watch.ledger_schema import to_text
from visionloop.watch.names import one_line, shown
from visionloop.watch.rules import RuleState, inside

log = logging.getLogger(__name__)


@dataclass
class Result:
    """What happened to one file: done | failed | skipped | retry | requeued | changed | error.
    `retry` is a transient workflow error (its attempts are counted in the ledger); `error` is a
    problem before or around the run (unreadable file, unexpected exception) that the watcher
    retries a few times (`final`: not at all) before it gives up on the file and says so."""

    kind: str
    path: Path
    detail: str = ""
    retry_in: float = 0.0
    run_dir: Path | None = None
    job_started: float | None = None  # time.time() when the loop began the job
    final: bool = False
    extra: dict = field(default_factory=dict)

    def to_json(self, rule: str) -> dict:
        """The line `watch --json` prints for a file the watcher is done with: "done", "failed",
        or "unfinished" (not processed: given up on until it changes, or interrupted)."""
        status = self.kind if self.kind in ("done", "failed") else "unfinished"
        return {"file": str(self.path), "rule": rule, "status": status,
                "run": str(self.run_dir) if self.run_dir else None, "outputs": self.extra.get("outputs") or {},
                "moved_to": self.extra.get("moved_to"), "error": None if status == "done" else self.detail or status}


def untouchable(path: Path, folder: Path) -> str | None:
    """Why the watcher must not take or move `path` (None when it may): it is not a regular file
    (a symbolic link, a folder), or it lies outside `folder` once links are resolved."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return "the file is gone"
    except OSError as exc:
        return f"cannot look at it ({exc.strerror or exc})"
    if stat.S_ISLNK(st.st_mode):
        return "it is a symbolic link (never followed)"
    if not stat.S_ISREG(st.st_mode):
        return "it is not a regular file"
    real_parent = Path(os.path.realpath(path.parent))
    if not inside(real_parent, folder):
        return f"it lies outside the watched folder {shown(folder)} (reached through a symbolic link)"
    return None


def _real_folder(folder: Path) -> None:
    """Make `folder` (and its parents); refuse one that is a link or not a folder."""
    folder.mkdir(parents=True, exist_ok=True)
    st = os.lstat(folder)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise NotADirectoryError(errno.ENOTDIR, "not a folder (a link or a file is in the way)", str(folder))


def move_no_clobber(src: Path, folder: Path) -> Path:
    """Move the regular file `src` into `folder`, adding " (1)", " (2)", ... to the stem instead
    of overwriting. Links are never followed: a link as `src` or as `folder` is refused."""
    if stat.S_ISLNK(os.lstat(src).st_mode):
        raise OSError(errno.ELOOP, "refusing to move a symbolic link", str(src))
    _real_folder(folder)
    stem, suffix = src.stem, src.suffix
    for n in range(10_000):
        dest = folder / (src.name if n == 0 else f"{stem} ({n}){suffix}")
        try:
            os.link(src, dest, follow_symlinks=False)  # fails if dest exists: no check-then-move race
        except FileExistsError:
            continue
        except OSError:  # another filesystem, or links not supported there
            try:
                fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0))
            except FileExistsError:
                continue
            os.close(fd)  # the name is ours now; os.replace fills it (same folder, so atomic)
            tmp = dest.with_name(f".{dest.name}.moving")
            try:
                shutil.copy2(src, tmp, follow_symlinks=False)
                os.replace(tmp, dest)
            except BaseException:  # the input stays where it was; the half-made copy goes
                tmp.unlink(missing_ok=True)
                dest.unlink(missing_ok=True)
                raise
            os.unlink(src)
            return dest
        os.unlink(src)
        return dest
    raise OSError(errno.EEXIST, f"no free name for {shown(src.name)} in {shown(folder)}")


def versions() -> dict[str, str]:
    """What a failure record names: visionloop, python and the model libraries installed."""
    from visionloop import __version__
    from visionloop.workflows.manifest import package_versions  # read once per process

    installed = package_versions()
    out = {"visionloop": __version__, "python": platform.python_version()}
    out.update({dist: installed[dist] for dist in ("torch", "transformers", "diffusers") if installed.get(dist)})
    return out


def output_hashes(run_dir: Path | None, steps: list[dict] = ()) -> list[str]:
    """sha256 of every file a run wrote, so the watcher knows its own outputs if they come back.
    The images' hashes are taken from the steps' `image_hashes` (the engine hashed them as they
    were written); only the other files (manifest, outputs.json, sidecars) are read here."""
    if run_dir is None or not Path(run_dir).is_dir():
        return []
    known = {str(h["path"]): h["sha256"] for step in steps for h in step.get("image_hashes") or []
             if h.get("sha256")}
    hashes = []
    for p in Path(run_dir).rglob("*"):
        if p.is_file() and not p.is_symlink():
            h = known.get(str(p))
            if h is None:
                try:
                    h = sha256_file(p)
                except OSError:  # gone meanwhile: nothing to recognise
                    continue
            hashes.append(h)
    return hashes


def _move(path: Path, rs: RuleState, folder: Path, what: str) -> tuple[Path | None, str | None]:
    """Move the input into `folder`: (where it is now, or None if gone; a note when not moved)."""
    reason = untouchable(path, rs.folder)
    if reason == "the file is gone":
        return None, "the file was gone"
    if reason:
        return path, f"not moved to {what}/: {reason}"
    try:
        return move_no_clobber(path, folder), None
    except OSError as exc:
        return path, f"could not move it to {shown(folder)} ({exc.strerror or exc}); left in place"


def record_done(rs: RuleState, path: Path, key: Key, outcome, job_started) -> Result:
    run_dir = Path(outcome.run_dir) if outcome.run_dir else None
    final, note = path, None
    if rs.rule.on_success == "move":
        moved, note = _move(path, rs, rs.processed, "processed")
        final = moved or path
    rs.ledger.finish(key, "done", path=final, run_dir=str(run_dir) if run_dir else None,
                     outputs=output_hashes(run_dir, outcome.steps))
    try:  # the next rescan need not hash it again
        st = os.stat(final, follow_symlinks=False)
        rs.ledger.mark_seen(final, key, st.st_size, st.st_ctime_ns)
    except OSError:
        pass
    if note:
        log.warning("%s: done, but %s", shown(path), one_line(note))
    return Result("done", path, str(run_dir or ""), run_dir=run_dir, job_started=job_started,
                  extra={"note": note, "outputs": dict(outcome.outputs or {})})


def _sidecar_spot(rs: RuleState, name: str) -> Path | None:
    """Where NAME.error.json goes when the input was not moved into failed/: a free name in
    failed/, or nowhere when failed/ cannot be used (never in the watched folder)."""
    try:
        _real_folder(rs.failed)
    except OSError:
        return None
    base, n = name, 0
    while (rs.failed / f"{name}.error.json").exists() or (rs.failed / name).exists():
        n += 1
        stem, suffix = os.path.splitext(base)
        name = f"{stem} ({n}){suffix}"
    return rs.failed / name


def record_failed(rs: RuleState, path: Path, key: Key, error: str, step: str | None, run_dir,
                  job_started=None, announced: bool = False) -> Result:
    """Move the input to failed/ with NAME.error.json beside it; record it as failed. A move that
    cannot be made leaves the file in place (recorded failed all the same, with the reason).
    The failure is logged as a warning, or only at info level when the caller `announced` it
    already (the watcher says every result the runner gives: one report per failure)."""
    attempts = rs.ledger.attempts(key)
    moved, note = _move(path, rs, rs.failed, "failed")
    in_failed = moved is not None and moved != path
    spot = moved if in_failed else _sidecar_spot(rs, path.name)
    record = {"file": (spot or path).name, "original_path": str(path), "rule": rs.name,
              "workflow": rs.rule.workflow, "error": error, "step": step, "attempts": attempts, "sha256": key.sha,
              "run_dir": str(run_dir) if run_dir else None, "failed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "pid": os.getpid(), "versions": versions(), "platform": sys.platform, "note": note}
    if spot is not None:
        try:  # a name that is not UTF-8 is written escaped ("bad\\udcff.png"): JSON is UTF-8 text
            atomic_write_json(spot.with_name(spot.name + ".error.json"),
                              {k: to_text(v) if isinstance(v, str) else v for k, v in record.items()})
        except (OSError, ValueError) as exc:  # the failure is still recorded in the ledger
            log.warning("%s: cannot write its error record in %s (%s)", shown(path), shown(spot.parent),
                        one_line(getattr(exc, "strerror", None) or exc))
    recorded = error if not note else f"{error} ({note})"
    rs.ledger.finish(key, "failed", path=moved or path, error=recorded, step=step,
                     run_dir=str(run_dir) if run_dir else None)
    where = f"moved to {shown(moved)}" if in_failed else (note or "left in place")
    log.log(logging.INFO if announced else logging.WARNING, "%s: failed (%s); %s", shown(path), one_line(error),
            one_line(where))
    return Result("failed", path, error, run_dir=Path(run_dir) if run_dir else None, job_started=job_started,
                  extra={"moved_to": str(moved) if in_failed else None, "note": note})


def record_failed_copy(rs: RuleState, path: Path, key: Key, original: tuple[str, str],
                       announced: bool = False) -> Result:
    """The same bytes as a file that already failed under this rule: they would fail again, so
    this copy goes to failed/ too, its record naming the first one (its ledger row stays the
    first file's; `--retry-failed` puts that one back in line). Logged as `record_failed` is."""
    first, error = original
    detail = f"same content as {shown(first)}, which failed: {error}"
    moved, note = _move(path, rs, rs.failed, "failed")
    in_failed = moved is not None and moved != path
    if in_failed:
        record = {"file": moved.name, "original_path": str(path), "rule": rs.name, "workflow": rs.rule.workflow,
                  "error": detail, "same_as": first, "sha256": key.sha, "attempts": 0,
                  "failed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "versions": versions(), "note": note}
        try:
            atomic_write_json(moved.with_name(moved.name + ".error.json"),
                              {k: to_text(v) if isinstance(v, str) else v for k, v in record.items()})
        except (OSError, ValueError) as exc:
            log.warning("%s: cannot write its error record (%s)", shown(moved), one_line(exc))
    log.log(logging.INFO if announced else logging.WARNING, "%s: failed (%s); %s", shown(path), one_line(detail),
            f"moved to {shown(moved)}" if in_failed else one_line(note or "left in place"))
    return Result("failed", path, detail, extra={"moved_to": str(moved) if in_failed else None, "note": note})
