"""Running one settled file: hash, claim in the ledger, run the workflow through the loop,
then hand the outcome to `outcome` (done, failed/, the error record).

Nothing is lost: the input stays where it is until its outcome is recorded; a transient error
(file busy, disk full, backend down, out of GPU memory) is retried with backoff before it
counts as failed; a job interrupted by shutdown goes back to `queued`; an unexpected error
after the claim is recorded as a failure, so no ledger row is left `running`.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import threading
import time
from concurrent.futures import CancelledError, Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Callable

from visionloop.images import sha256_file
from visionloop.watch.ledger import Key
from visionloop.watch.names import one_line, shown
from visionloop.watch.outcome import (
    Result,
    record_done,
    record_failed,
    record_failed_copy,
    untouchable,
)
from visionloop.watch.rules import RuleState
from visionloop.watch.stability import Ready

log = logging.getLogger(__name__)

TRANSIENT_ERRNOS = {errno.EBUSY, errno.EAGAIN, errno.ENOSPC, errno.EINTR, errno.ETXTBSY}
_TRANSIENT_TEXT = re.compile(r"device or resource busy|resource temporarily unavailable|no space left on device|"
                             r"\bEBUSY\b|\bEAGAIN\b|\bENOSPC\b|backend unreachable|connection refused|"
                             r"out of (?:gpu |cuda |mps |device )?memory|OutOfMemoryError|"
                             # a vision server (Ollama, OpenAI-compatible) down, failing or busy: models/remote_http.py
                             r"cannot reach (?:Ollama|the OpenAI-compatible server)|server error \(HTTP 5\d\d\)|"
                             r"rate limiting \(HTTP 429\)|stopped (?:mid-answer|before answering)|sent no answer within|"
                             r"went silent for", re.IGNORECASE)


#: a vision server that is down, failing or busy: the file is not at fault, so it never fails for it
_SERVER_DOWN = re.compile(r"cannot reach (?:Ollama|the OpenAI-compatible server)|server error \(HTTP 5\d\d\)|"
                          r"rate limiting \(HTTP 429\)", re.IGNORECASE)


def is_transient(error: BaseException | str | None) -> bool:
    """Worth another try later: a busy or full disk, a backend down, the GPU out of memory
    (CUDA's `torch.cuda.OutOfMemoryError` / "CUDA out of memory", MPS "out of memory", and
    the diffusion backend's "out of GPU memory")."""
    if isinstance(error, OSError) and error.errno in TRANSIENT_ERRNOS:
        return True
    if isinstance(error, BaseException) and type(error).__name__ == "OutOfMemoryError":
        return True
    return bool(error) and bool(_TRANSIENT_TEXT.search(str(error)))


def hash_with_retry(path: Path, retries: int, backoff: float) -> str:
    """sha256 of the file; a busy file (EBUSY/EAGAIN) is tried again with growing pauses."""
    for attempt in range(retries + 1):
        try:
            return sha256_file(path)
        except OSError as exc:
            if exc.errno not in TRANSIENT_ERRNOS or attempt == retries:
                raise
            time.sleep(min(backoff * 2 ** attempt, 5.0))
    raise RuntimeError("unreachable: the last attempt returns or raises")


class Runner:
    """Runs settled files one at a time through the loop. `stop` (an Event) asks it to wrap up:
    the job in hand gets `grace` seconds to finish, then it is cancelled (`loop.cancel()`) and
    re-queued; a job that has not stopped `cancel_wait` seconds later is left, and said so.

    The watcher announces every result `process` returns, so a failure is logged at info level
    only (`-v`), never said twice. `on_result(rs, result)`, when set, hears of each result as
    `process` returns it (`watch --json` makes its lines from them)."""

    def __init__(self, loop, registry, stop: threading.Event, grace: float = 30.0, backoff: float = 1.0,
                 cancel_wait: float = 30.0, reprocess: bool = False):
        self.loop = loop
        self.registry = registry
        self.stop = stop
        self.grace = grace
        self.backoff = backoff
        self.cancel_wait = cancel_wait
        self.reprocess = reprocess
        self.stuck = False  # a cancelled job that did not stop (reported by Watcher.stop)
        self._reprocessed: set[Key] = set()  # --reprocess runs each file once per session
        self.on_result: Callable[[RuleState, Result], None] | None = None

    def process(self, rs: RuleState, ready: Ready) -> Result:
        result = self._process(rs, ready)
        if self.on_result is not None:
            self.on_result(rs, result)
        return result

    def _process(self, rs: RuleState, ready: Ready) -> Result:
        path = ready.path
        # 1. Still the file that settled, a regular file really inside the watched folder?
        reason = untouchable(path, rs.folder)
        if reason == "the file is gone":
            return Result("skipped", path, "gone before it was taken")
        if reason:
            log.warning("%s: not taken: %s", shown(path), reason)
            return Result("skipped", path, reason)
        st = os.stat(path, follow_symlinks=False)
        if (st.st_size, st.st_mtime_ns) != (ready.size, ready.mtime_ns):
            return Result("changed", path)
        # 2. Hash and claim; the hash is taken now, so only the final content runs.
        try:
            sha = hash_with_retry(path, rs.rule.retries, self.backoff)
        except FileNotFoundError:
            return Result("skipped", path, "gone before it was taken")
        except PermissionError:  # final until the file changes (chmod changes its ctime)
            return Result("error", path, "permission denied", final=True)
        except OSError as exc:
            return Result("error", path, f"cannot read it ({exc.strerror or exc})", retry_in=self.backoff * 4)
        key = Key(sha, rs.name, rs.fp)
        claim = rs.ledger.claim(key, path, reprocess=self.reprocess and key not in self._reprocessed)
        if claim.action != "run":
            if claim.action != "busy":  # busy: running right now; looked at again later
                rs.ledger.mark_seen(path, key, st.st_size, st.st_ctime_ns)
            failure = rs.ledger.failure(key) if claim.action == "duplicate" else None
            if failure is not None:  # bytes that failed before: never left silently among the inputs
                return record_failed_copy(rs, path, key, failure, announced=True)
            log.info("%s: skipped (%s)", shown(path), claim.action)
            return Result("skipped", path, claim.action)
        self._reprocessed.add(key)
        try:
            if ready.problem:
                rs.ledger.start(key)
                return record_failed(rs, path, key, ready.problem, None, None, announced=True)
            # 3. Run it through the loop (one job at a time, models shared with the chat).
            return self._run(rs, path, key)
        except Exception as exc:  # after the claim nothing may leave the row queued or running unseen
            error = f"unexpected error in the watcher: {type(exc).__name__}: {one_line(exc)}"
            log.debug("%s: %s", shown(path), error, exc_info=True)
            if rs.ledger.state(key) in ("done", "failed"):
                raise
            return record_failed(rs, path, key, error, None, None, announced=True)

    def _run(self, rs: RuleState, path: Path, key: Key) -> Result:
        from visionloop.workflows import run_workflow

        started: dict[str, float] = {}

        def job(ctx):
            rs.ledger.start(key)
            started["at"] = time.time()
            # the run folder goes in the ledger at once: if this process dies, a restart marks it interrupted
            return run_workflow(rs.workflow, {rs.rule.input: str(path)}, ctx, self.registry, rs.output,
                                on_run_dir=lambda run_dir: rs.ledger.set_run_dir(key, str(run_dir)),
                                input_hashes={rs.rule.input: key.sha})  # hashed just now, to claim it

        future = self.loop.submit(job)
        how = self._wait(future)
        job_started = started.get("at")
        if how == "stuck":  # cancelled, but still running: leave it to finish on its own
            rs.ledger.finish(key, "queued", error="interrupted by shutdown (the job did not stop when cancelled)")
            return Result("requeued", path, "interrupted by shutdown; the job did not stop", job_started=job_started)
        try:
            outcome = future.result()
        except CancelledError:  # never started (or the loop shut down first): the row is still `queued`
            if "at" in started:
                rs.ledger.finish(key, "queued", error="interrupted by shutdown")
            return Result("requeued", path, "shutdown before it started")
        except Exception as exc:  # the engine promises not to raise; if it does, it is a failure
            outcome = None
            error, step = f"{type(exc).__name__}: {exc}", None
            transient = is_transient(exc)
        if outcome is not None:
            if outcome.status == "ok":
                return record_done(rs, path, key, outcome, job_started)
            error, step = outcome.error or "workflow failed", outcome.failed_step
            transient = is_transient(error)
        if how == "cancelled":
            rs.ledger.finish(key, "queued", error=f"interrupted by shutdown: {error}")
            return Result("requeued", path, "interrupted by shutdown", job_started=job_started)
        attempts = rs.ledger.attempts(key)
        if transient and attempts <= rs.rule.retries:
            delay = min(self.backoff * 2 ** (attempts - 1), 300.0)
            rs.ledger.finish(key, "queued", error=error, step=step)
            log.warning("%s: transient error (%s); retry %d of %d in %.1f s", shown(path), one_line(error), attempts,
                        rs.rule.retries, delay)
            return Result("retry", path, error, retry_in=delay, job_started=job_started)
        if transient and _SERVER_DOWN.search(str(error)):
            # the vision server is down or failing, not the file: it waits in the ledger (queued,
            # nothing moves to failed/) and is taken again at the next start or `watch --once`
            rs.ledger.finish(key, "queued", error=error, step=step)
            log.warning("%s: %s; the file waits (queued) and is tried again at the next start or "
                        "`visionloop watch --once`", shown(path), one_line(error))
            return Result("requeued", path, f"waiting for the vision server: {error}", job_started=job_started)
        if transient:
            error = f"transient, gave up after {attempts} attempts: {error}"
        return record_failed(rs, path, key, error, step, getattr(outcome, "run_dir", None), job_started,
                             announced=True)

    def _wait(self, future: Future) -> str:
        """Wait for the job: "finished", or on shutdown (after `grace` s) "cancelled" once it
        has stopped, or "stuck" when it has not stopped `cancel_wait` s after the cancel."""
        deadline = None
        while True:
            try:
                future.exception(timeout=0.05)
                return "finished"
            except FutureTimeout:
                pass
            except CancelledError:
                return "cancelled"
            if not self.stop.is_set():
                continue
            if future.cancel():
                return "cancelled"
            deadline = deadline or time.monotonic() + self.grace
            if time.monotonic() < deadline:
                continue
            self.loop.cancel()  # the job in hand is this one: the future could not be cancelled
            try:
                future.exception(timeout=self.cancel_wait)
            except FutureTimeout:
                log.warning("the job in hand did not stop within %g s of being cancelled; leaving it",
                            self.cancel_wait)
                self.stuck = True
                return "stuck"
            except CancelledError:
                pass
            return "cancelled"
