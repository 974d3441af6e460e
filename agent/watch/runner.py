"""Running one settled file: hash, claim in the ledger, run the workflow through the loop,
then record the result and put the input where it belongs.

Nothing is lost: the input stays where it is until its outcome is recorded; a failure moves it
to failed/ (never overwriting: `a (1).png`) with `a.png.error.json` beside it; a transient
error (file busy, disk full, backend down) is retried with backoff before it counts as failed;
a job interrupted by shutdown goes back to `queued`.
"""

from __future__ import annotations

import errno
import logging
import os
import platform
import re
import shutil
import sys
import threading
import time
from concurrent.futures import CancelledError, Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.config import WatchRule
from agent.images import atomic_write_json, sha256_file
from agent.watch.ledger import Ledger
from agent.watch.stability import Ready

log = logging.getLogger(__name__)

TRANSIENT_ERRNOS = {errno.EBUSY, errno.EAGAIN, errno.ENOSPC, errno.EINTR, errno.ETXTBSY}
_TRANSIENT_TEXT = re.compile(r"device or resource busy|resource temporarily unavailable|no space left on device|"
                             r"\bEBUSY\b|\bEAGAIN\b|\bENOSPC\b|backend unreachable|connection refused|"
                             r"out of memory", re.IGNORECASE)


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

    @property
    def name(self) -> str:
        return self.rule.name


@dataclass
class Result:
    """What happened to one file: done | failed | skipped | retry | requeued | changed."""

    kind: str
    path: Path
    detail: str = ""
    retry_in: float = 0.0
    run_dir: Path | None = None
    job_started: float | None = None  # time.time() when the loop began the job
    extra: dict = field(default_factory=dict)


def is_transient(error: BaseException | str | None) -> bool:
    if isinstance(error, OSError) and error.errno in TRANSIENT_ERRNOS:
        return True
    return bool(error) and bool(_TRANSIENT_TEXT.search(str(error)))


def move_no_clobber(src: Path, folder: Path) -> Path:
    """Move `src` into `folder`, adding " (1)", " (2)", ... to the stem instead of overwriting."""
    folder.mkdir(parents=True, exist_ok=True)
    stem, suffix = src.stem, src.suffix
    for n in range(10_000):
        dest = folder / (src.name if n == 0 else f"{stem} ({n}){suffix}")
        try:
            os.link(src, dest)  # fails if dest exists: no check-then-move race
        except FileExistsError:
            continue
        except OSError:  # another filesystem, or links not supported there
            if dest.exists():
                continue
            shutil.move(src, dest)
            return dest
        os.unlink(src)
        return dest
    raise OSError(errno.EEXIST, f"no free name for {src.name} in {folder}")


def versions() -> dict[str, str]:
    """What a failure record names: visionloop, python and the model libraries installed."""
    from agent import __version__
    from agent.workflows.engine import package_versions  # read once per process

    installed = package_versions()
    out = {"visionloop": __version__, "python": platform.python_version()}
    out.update({dist: installed[dist] for dist in ("torch", "transformers", "diffusers") if installed.get(dist)})
    return out


def hash_with_retry(path: Path, retries: int, backoff: float) -> str:
    """sha256 of the file; a busy file (EBUSY/EAGAIN) is tried again with growing pauses."""
    for attempt in range(retries + 1):
        try:
            return sha256_file(path)
        except OSError as exc:
            if exc.errno not in TRANSIENT_ERRNOS or attempt == retries:
                raise
            time.sleep(min(backoff * 2 ** attempt, 5.0))
    raise AssertionError("unreachable")


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


class Runner:
    """Runs settled files one at a time through the loop. `stop` (an Event) asks it to wrap up:
    the job in hand gets `grace` seconds to finish, then it is cancelled and re-queued."""

    def __init__(self, loop, registry, stop: threading.Event, grace: float = 30.0, backoff: float = 1.0):
        self.loop = loop
        self.registry = registry
        self.stop = stop
        self.grace = grace
        self.backoff = backoff

    def process(self, rs: RuleState, ready: Ready) -> Result:
        path = ready.path
        # 1. Still the file that settled? (content replaced meanwhile: track it again)
        try:
            st = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            return Result("skipped", path, "gone before it was taken")
        if (st.st_size, st.st_mtime_ns) != (ready.size, ready.mtime_ns):
            return Result("changed", path)
        # 2. Hash and claim; the hash is taken now, so only the final content runs.
        try:
            sha = hash_with_retry(path, rs.rule.retries, self.backoff)
        except FileNotFoundError:
            return Result("skipped", path, "gone before it was taken")
        except PermissionError:
            log.warning("%s: permission denied; skipped until the file changes", path)
            rs.ledger.mark_seen(path, rs.name, st.st_size, st.st_ctime_ns)
            return Result("skipped", path, "permission denied")
        except OSError as exc:
            log.warning("%s: cannot read (%s); will look again", path, exc.strerror or exc)
            return Result("retry", path, str(exc), retry_in=self.backoff * 4)
        claim = rs.ledger.claim(sha, rs.name, path)
        if claim.action != "run":
            rs.ledger.mark_seen(path, rs.name, st.st_size, st.st_ctime_ns)
            log.info("%s: skipped (%s)", path, claim.action)
            return Result("skipped", path, claim.action)
        if ready.problem:
            rs.ledger.start(sha, rs.name)
            return self._fail(rs, path, sha, ready.problem, None, None)
        # 3. Run it through the loop (one job at a time, models shared with the chat).
        return self._run(rs, path, sha)

    def _run(self, rs: RuleState, path: Path, sha: str) -> Result:
        from agent.workflows import run_workflow

        started: dict[str, float] = {}

        def job(ctx):
            rs.ledger.start(sha, rs.name)
            started["at"] = time.time()
            # the run folder goes in the ledger at once: if this process dies, a restart marks it interrupted
            return run_workflow(rs.workflow, {rs.rule.input: str(path)}, ctx, self.registry, rs.output,
                                on_run_dir=lambda run_dir: rs.ledger.set_run_dir(sha, rs.name, str(run_dir)),
                                input_hashes={rs.rule.input: sha})  # hashed just now, to claim it

        future = self.loop.submit(job)
        cancelled = self._wait(future)
        job_started = started.get("at")
        try:
            outcome = future.result()
        except CancelledError:  # never started: the row is still `queued`
            return Result("requeued", path, "shutdown before it started")
        except Exception as exc:  # the engine promises not to raise; if it does, it is a failure
            outcome = None
            error, step = f"{type(exc).__name__}: {exc}", None
            transient = is_transient(exc)
        if outcome is not None:
            if outcome.status == "ok":
                return self._done(rs, path, sha, outcome, job_started)
            error, step = outcome.error or "workflow failed", outcome.failed_step
            transient = is_transient(error)
        if cancelled:
            rs.ledger.finish(sha, rs.name, "queued", error=f"interrupted by shutdown: {error}")
            return Result("requeued", path, "interrupted by shutdown", job_started=job_started)
        attempts = rs.ledger.attempts(sha, rs.name)
        if transient and attempts <= rs.rule.retries:
            delay = min(self.backoff * 2 ** (attempts - 1), 300.0)
            rs.ledger.finish(sha, rs.name, "queued", error=error, step=step)
            log.warning("%s: transient error (%s); retry %d of %d in %.1f s", path, error, attempts,
                        rs.rule.retries, delay)
            return Result("retry", path, error, retry_in=delay, job_started=job_started)
        if transient:
            error = f"transient, gave up after {attempts} attempts: {error}"
        run_dir = getattr(outcome, "run_dir", None)
        return self._fail(rs, path, sha, error, step, run_dir, job_started)

    def _wait(self, future: Future) -> bool:
        """Wait for the job; on shutdown give it `grace` seconds, then cancel. True if cancelled."""
        deadline = None
        while True:
            try:
                future.exception(timeout=0.05)
                return False
            except FutureTimeout:
                pass
            except CancelledError:
                return True
            if self.stop.is_set():
                if future.cancel():
                    return True
                deadline = deadline or time.monotonic() + self.grace
                if time.monotonic() >= deadline:
                    self.loop.cancel()
                    try:
                        future.exception(timeout=60)
                    except BaseException:
                        pass
                    return True

    def _done(self, rs: RuleState, path: Path, sha: str, outcome, job_started) -> Result:
        run_dir = Path(outcome.run_dir) if outcome.run_dir else None
        final = path
        if rs.rule.on_success == "move" and path.exists():
            final = move_no_clobber(path, rs.processed)
        rs.ledger.finish(sha, rs.name, "done", path=final, run_dir=str(run_dir) if run_dir else None,
                         outputs=output_hashes(run_dir, outcome.steps))
        try:  # the next rescan need not hash it again
            st = os.stat(final, follow_symlinks=False)
            rs.ledger.mark_seen(final, rs.name, st.st_size, st.st_ctime_ns)
        except OSError:
            pass
        return Result("done", path, str(run_dir or ""), run_dir=run_dir, job_started=job_started)

    def _fail(self, rs: RuleState, path: Path, sha: str, error: str, step: str | None, run_dir,
              job_started=None) -> Result:
        """Move the input to failed/ with NAME.error.json beside it; record it as failed."""
        attempts = rs.ledger.attempts(sha, rs.name)
        dest = path
        if path.exists():
            dest = move_no_clobber(path, rs.failed)
        record = {"file": dest.name, "original_path": str(path), "rule": rs.name, "workflow": rs.rule.workflow,
                  "error": error, "step": step, "attempts": attempts, "sha256": sha,
                  "run_dir": str(run_dir) if run_dir else None, "failed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                  "pid": os.getpid(), "versions": versions(), "platform": sys.platform}
        atomic_write_json(dest.with_name(dest.name + ".error.json"), record)
        rs.ledger.finish(sha, rs.name, "failed", path=dest, error=error, step=step,
                         run_dir=str(run_dir) if run_dir else None)
        log.warning("%s: failed (%s); moved to %s", path, error, dest)
        return Result("failed", path, error, run_dir=Path(run_dir) if run_dir else None, job_started=job_started,
                      extra={"moved_to": str(dest)})
