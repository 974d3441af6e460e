"""`Watcher`: runs every watch rule, from the CLI (`visionloop watch`) or inside the chat.

One thread does the work: a full scan first (files that came while nothing watched), then
stability checks, runs and a periodic rescan; watchdog's thread only adds hints. Jobs go
through the shared `Loop`, so the watcher and the chat take turns on the same models.
Rules are resolved and checked in `rules`; one file's run is `runner`; its record, `outcome`.
"""

from __future__ import annotations

import heapq
import logging
import os
import threading
import time
from pathlib import Path
from typing import Callable

from visionloop.config import WatchRule
from visionloop.watch.ledger import WatchError
from visionloop.watch.names import one_line, shown
from visionloop.watch.outcome import Result, move_no_clobber, record_failed
from visionloop.watch.rules import RuleState, inside, resolve_rules
from visionloop.watch.runner import Runner
from visionloop.watch.events import FolderEvents
from visionloop.watch.scanner import scan, unmatched_note
from visionloop.watch.stability import Ready, Tracker

log = logging.getLogger(__name__)

#: An unreadable file or an unexpected error is tried this many more times (backoff doubling
#: from 4 x `backoff`), then the watcher gives up on it until it changes, and says so.
ERROR_RETRIES = 3


class Watcher:
    """Watch `rules`; `start()` runs in the background, `run_once()` processes what is there."""

    #: `run_once` names a file it has waited on this long (seconds) without it settling.
    wait_note_after = 5.0

    def __init__(self, rules: list[WatchRule], loop, registry, config, announce: Callable[[str], None] | None = None,
                 poll: bool = False, grace: float = 30.0, backoff: float = 1.0,
                 on_wait: Callable[[str], None] | None = None, reprocess: bool = False, cancel_wait: float = 30.0):
        from visionloop.workflows import load_workflow

        if not rules:
            raise WatchError("no watch rules: add a `watch:` section to the config or give FOLDER --workflow W --out DIR")
        self.loop, self.registry, self.config = loop, registry, config
        self.announce = announce or (lambda message: None)
        # `run_once` says which files it is still waiting for (the CLI: one stderr line per file)
        self.on_wait = on_wait or (lambda message: log.info("%s", message))
        self._waited_on: set[tuple[Path, str]] = set()
        self.poll = poll
        self._stop = threading.Event()
        self.runner = Runner(loop, registry, self._stop, grace=grace, backoff=backoff, cancel_wait=cancel_wait,
                             reprocess=reprocess)
        self.tracker = Tracker()
        self.counts = {"processed": 0, "failed": 0, "skipped": 0, "unfinished": 0}
        self.latencies: list[float] = []  # settled -> job started, seconds (for the benchmark)
        self._retries: list[tuple[float, int, Ready]] = []
        self._seq = 0
        self._left_alone: set[tuple] = set()
        self._errors: dict[tuple[Path, str], int] = {}  # unexpected errors per file, for the cap
        self._given_up: set[tuple] = set()  # (rule, path, size, ctime): not looked at again until changed
        self._thread: threading.Thread | None = None
        self.rules, self.ledgers = resolve_rules(rules, config, registry, load_workflow, reprocess)
        self._by_name = {rs.name: rs for rs in self.rules}
        self.events = FolderEvents(self.rules, self.tracker, poll, self._scan_rule)
        try:
            self._recover(reprocess)
        except BaseException:
            try:  # the locks go; the error that stopped the start is the one raised
                self.close()
            except Exception as exc:  # noqa: BLE001 - said, never instead of the first error
                log.warning("while closing after a failed start: %s: %s", type(exc).__name__, one_line(exc))
            raise

    def _recover(self, reprocess: bool) -> None:
        """Jobs that were running when a process died are redone once (their run folders say
        "interrupted"); a second death fails them. `--reprocess` forgets what the scan knew."""
        from visionloop.workflows.manifest import mark_interrupted

        for ledger in self.ledgers.values():
            for run_dir in ledger.stale_run_dirs():  # their old run folders must not say "running" forever
                if mark_interrupted(run_dir, "interrupted: the watcher's process ended during the run; "
                                             "the file was run again (or failed) on restart"):
                    log.info("%s: marked interrupted", shown(run_dir))
            for key, path in ledger.recover():
                rs = self._by_name.get(key.rule)
                if rs is not None and key.fp == rs.fp and os.path.lexists(path):
                    record_failed(rs, Path(path), key, "interrupted twice while running; not retried", None, None)
        if reprocess:
            for rs in self.rules:
                rs.ledger.forget_seen(rs.name, rs.fp)

    # --- public API ----------------------------------------------------------------------------
    def start(self) -> None:
        """Watch in background threads; returns at once."""
        self.events.start()
        self._thread = threading.Thread(target=self._work, args=(False,), name="visionloop-watch", daemon=True)
        self._thread.start()

    def run_once(self) -> dict:
        """Process the files there now (waiting for each to settle), then return the counts:
        processed, failed, skipped, and unfinished (not done: unreadable, interrupted, given up)."""
        before = dict(self.counts)
        self._work(True)
        return {k: self.counts[k] - before[k] for k in self.counts}

    def run_forever(self) -> None:
        """The CLI's mode: watch in the calling thread until `request_stop()` (a signal)."""
        self.events.start()
        self._work(False)

    def request_stop(self) -> None:
        self._stop.set()

    def stop(self) -> bool:
        """Finish the job in hand (up to `grace` s), else cancel it and re-queue it; stop watching;
        release the ledgers' locks. Never waits without bound: a thread or a cancelled job that
        has not stopped in time is reported (a warning) and False is returned."""
        self._stop.set()
        clean = True
        thread, self._thread = self._thread, None
        if thread is not None:
            limit = self.runner.grace + self.runner.cancel_wait + 5.0
            thread.join(timeout=limit)
            if thread.is_alive():
                clean = False
                log.warning("the watcher's thread did not stop within %g s; leaving it", limit)
        return self.close() and clean and not self.runner.stuck

    def close(self) -> bool:
        clean = self.events.stop()
        for ledger in self.ledgers.values():
            ledger.close()
        self.ledgers = {}
        return clean

    def retry_failed(self) -> int:
        """Put every failed file back in line, with fresh attempts: a file in failed/ moves back
        into its watched folder; one that could not be moved there is queued where it is."""
        count = 0
        for rs in self.rules:
            for key, path in rs.ledger.failed(rs.name, rs.fp):
                p = Path(path)
                if not os.path.lexists(p):
                    log.warning("%s: failed file is gone; cannot retry it", shown(p))
                    continue
                if inside(p, rs.folder) and not inside(p, rs.failed):
                    rs.ledger.requeue(key, p)  # never moved (failed/ was unusable): retried in place
                    count += 1
                    continue
                try:
                    dest = move_no_clobber(p, rs.folder)
                except OSError as exc:
                    log.warning("%s: cannot put it back in %s (%s)", shown(p), shown(rs.folder), exc.strerror or exc)
                    continue
                p.with_name(p.name + ".error.json").unlink(missing_ok=True)
                rs.ledger.requeue(key, dest)
                count += 1
        return count

    def status(self) -> dict:
        return {rs.name: rs.ledger.counts({rs.name: rs.fp}).get(rs.name, {}) for rs in self.rules}

    # --- the work loop ---------------------------------------------------------------------------
    def _scan_rule(self, rs: RuleState) -> None:
        for entry in scan(rs.folder, rs.rule.patterns, rs.rule.recursive, {rs.failed, rs.processed, rs.output}):
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            path = Path(entry.path)
            if (rs.name, path, st.st_size, st.st_ctime_ns) in self._given_up:
                continue
            if not rs.ledger.known(path, rs.name, rs.fp, st.st_size, st.st_ctime_ns):
                self.tracker.touch(path, rs.name, rs.settle, rs.ceiling)
            else:
                self._skip(rs, path, st.st_size, st.st_ctime_ns)

    def _skip(self, rs: RuleState, path: Path, size: int, ctime_ns: int) -> None:
        """Count a file left alone (done before, duplicate) once, not per rescan."""
        key = (rs.name, path, size, ctime_ns)
        if key not in self._left_alone:
            self._left_alone.add(key)
            self.counts["skipped"] += 1

    def _work(self, until_idle: bool) -> None:
        rescan = min(rs.rule.rescan for rs in self.rules)
        tick = max(0.02, min(0.25, min(rs.settle for rs in self.rules) / 4))
        last_scan = -1e9
        while not self._stop.is_set():
            self.events.check_folders()
            if time.monotonic() - last_scan >= rescan:
                for rs in self.rules:
                    self._scan_rule(rs)
                    if last_scan < 0:  # the first scan: a rule that takes none of the files there says so
                        note = unmatched_note(rs.folder, rs.rule.patterns, rs.rule.recursive,
                                              {rs.failed, rs.processed, rs.output})
                        if note:
                            log.warning("[%s] %s", shown(rs.name), note)
                last_scan = time.monotonic()
            ready = self.tracker.poll(empty_is_final=until_idle)  # --once: no writer will come back
            if until_idle:
                self._note_waiting()
            while self._retries and self._retries[0][0] <= time.monotonic():
                ready.append(heapq.heappop(self._retries)[2])
            for item in ready:
                if self._stop.is_set():
                    self.counts["unfinished"] += 1  # settled, never started: found again next time
                    continue
                self._handle(item)
            if until_idle and not len(self.tracker) and not self._retries:
                return
            wait = self.tracker.next_wait(tick)
            if self._retries:
                wait = min(wait, max(0.01, self._retries[0][0] - time.monotonic()))
            self._stop.wait(wait)
        if until_idle:  # stopped in the middle of a pass: what was still waiting is not done
            self.counts["unfinished"] += len(self.tracker) + len(self._retries)

    def _note_waiting(self) -> None:
        """Name each file `run_once` has waited on for `wait_note_after` s, once, so a pass that
        takes minutes (a file still being written, up to its ceiling) says why."""
        now = time.monotonic()
        for item in self.tracker.pending():
            waited = now - item.first_seen
            if waited < self.wait_note_after or (item.path, item.key) in self._waited_on:
                continue
            self._waited_on.add((item.path, item.key))
            self.on_wait(f"[{shown(item.key)}] waiting for {shown(item.path)}: not settled after {waited:.0f} s "
                         f"({item.size} bytes, changed {now - item.last_change:.0f} s ago; needs {item.settle:g} s "
                         f"unchanged, goes to failed/ after {item.ceiling:g} s)")

    def _handle(self, item: Ready) -> None:
        rs = self._by_name[item.key]
        try:
            result = self.runner.process(rs, item)
        except Exception as exc:  # a bug or an unexpected OS error must not stop the watcher
            log.debug("%s: unexpected error in the watcher", shown(item.path), exc_info=True)
            result = Result("error", item.path, f"unexpected error: {type(exc).__name__}: {one_line(exc)}",
                            retry_in=self.runner.backoff * 4)
        if result.job_started is not None:
            self.latencies.append(result.job_started - item.settled_at)
        name = f"[{shown(rs.name)}] {shown(item.path.name)}"
        if result.kind != "error":
            self._errors.pop((item.path, item.key), None)
        if result.kind == "changed":
            self.tracker.touch(item.path, rs.name, rs.settle, rs.ceiling)
        elif result.kind == "retry":
            self._later(item, result.retry_in)
        elif result.kind == "error":
            self._error(rs, item, result, name)
        elif result.kind == "requeued":
            self.counts["unfinished"] += 1
        elif result.kind == "done":
            self.counts["processed"] += 1
            note = f" ({one_line(result.extra['note'])})" if result.extra.get("note") else ""
            self.announce(f"{name}: done -> {shown(result.run_dir or '')}{note}")
        elif result.kind == "failed":
            self.counts["failed"] += 1
            where = result.extra.get("moved_to")
            where = shown(where) if where else one_line(result.extra.get("note") or "left in place")
            self.announce(f"{name}: failed ({one_line(result.detail)}) -> {where}")
        elif result.kind == "skipped":
            try:
                st = os.lstat(item.path)
                self._skip(rs, item.path, st.st_size, st.st_ctime_ns)
            except OSError:
                self.counts["skipped"] += 1

    def _later(self, item: Ready, delay: float) -> None:
        self._seq += 1
        heapq.heappush(self._retries, (time.monotonic() + delay, self._seq, item))

    def _error(self, rs: RuleState, item: Ready, result: Result, name: str) -> None:
        """Retry a file that could not be handled a few times, then give up on it (until it
        changes) and say so: never silently, never every 30 s forever."""
        n = self._errors.get((item.path, item.key), 0) + 1
        if not result.final and n <= ERROR_RETRIES:
            self._errors[(item.path, item.key)] = n
            delay = result.retry_in * 2 ** (n - 1)
            log.warning("%s: %s; trying again in %.1f s (%d of %d)", shown(item.path), result.detail, delay, n,
                        ERROR_RETRIES)
            self._later(item, delay)
            return
        self._errors.pop((item.path, item.key), None)
        self.counts["unfinished"] += 1
        tries = "" if result.final else f" after {n} tries"
        message = f"{name}: not processed{tries}: {result.detail}; left where it is until it changes"
        log.warning("%s", message)
        self.announce(message)
        try:
            st = os.lstat(item.path)
            self._given_up.add((rs.name, item.path, st.st_size, st.st_ctime_ns))
        except OSError:
            pass

