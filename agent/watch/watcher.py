"""`Watcher`: runs every watch rule, from the CLI (`visionloop watch`) or inside the chat.

One thread does the work: a full scan first (files that came while nothing watched), then
stability checks, runs and a periodic rescan; watchdog's thread only adds hints. Jobs go
through the shared `Loop`, so the watcher and the chat take turns on the same models.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from pathlib import Path
from typing import Callable

from agent.config import WatchRule
from agent.errors import VisionloopError
from agent.images import ensure_output_dir
from agent.watch.ledger import Ledger, WatchError
from agent.watch.runner import Result, RuleState, Runner, move_no_clobber
from agent.watch.scanner import scan, start_observer
from agent.watch.stability import Ready, Tracker, ceiling_for, wanted
from agent.paths import user_path

log = logging.getLogger(__name__)


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or path.is_relative_to(folder)


class Watcher:
    """Watch `rules`; `start()` runs in the background, `run_once()` processes what is there."""

    #: `run_once` names a file it has waited on this long (seconds) without it settling.
    wait_note_after = 5.0

    def __init__(self, rules: list[WatchRule], loop, registry, config, announce: Callable[[str], None] | None = None,
                 poll: bool = False, grace: float = 30.0, backoff: float = 1.0,
                 on_wait: Callable[[str], None] | None = None):
        from agent.workflows import load_workflow

        if not rules:
            raise WatchError("no watch rules: add a `watch:` section to the config or give FOLDER --workflow W --out DIR")
        self.loop, self.registry, self.config = loop, registry, config
        self.announce = announce or (lambda message: None)
        # `run_once` says which files it is still waiting for (the CLI: one stderr line per file)
        self.on_wait = on_wait or (lambda message: log.info("%s", message))
        self._waited_on: set[tuple[Path, str]] = set()
        self.poll = poll
        self._stop = threading.Event()
        self.runner = Runner(loop, registry, self._stop, grace=grace, backoff=backoff)
        self.tracker = Tracker()
        self.counts = {"processed": 0, "failed": 0, "skipped": 0}
        self.latencies: list[float] = []  # settled -> job started, seconds (for the benchmark)
        self._retries: list[tuple[float, int, Ready]] = []
        self._seq = 0
        self._left_alone: set[tuple] = set()
        self._thread: threading.Thread | None = None
        self._observer = None
        self.ledgers: dict[Path, Ledger] = {}
        self.rules: list[RuleState] = []
        try:
            self._resolve(rules, load_workflow)
        except BaseException:
            self.close()
            raise

    # --- setup ---------------------------------------------------------------------------------
    def _resolve(self, rules: list[WatchRule], load_workflow) -> None:
        from agent.workflows.engine import mark_interrupted

        names = [r.name for r in rules]
        if len(set(names)) != len(names):
            raise WatchError(f"watch rule names must be unique (got {', '.join(names)})")
        folders = []
        for rule in rules:
            folder = user_path(rule.folder).resolve()
            if not folder.is_dir():
                raise WatchError(f"{rule.folder}: watch rule {rule.name!r}: folder not found")
            folders.append(folder)
        for rule, folder in zip(rules, folders):
            output = user_path(rule.output).resolve()
            for other in folders:  # outputs inside a watched folder would be taken as inputs
                if _inside(output, other):
                    raise WatchError(f"{rule.output}: watch rule {rule.name!r}: the output folder is inside the "
                                     f"watched folder {other}; choose an output outside every watched folder")
            wf = load_workflow(rule.workflow, self.config, self.registry)
            inputs = getattr(getattr(wf, "spec", None), "inputs", None)
            if inputs is not None and rule.input not in inputs:
                raise WatchError(f"watch rule {rule.name!r}: workflow {rule.workflow!r} has no input {rule.input!r} "
                                 f"(inputs: {', '.join(inputs) or 'none'})")
            try:  # e.g. a path under a regular file: one line naming the folder and the rule
                ensure_output_dir(output)
            except VisionloopError as exc:
                raise WatchError(f"{exc} (watch rule {rule.name!r})") from None
            if output not in self.ledgers:
                self.ledgers[output] = Ledger(output)
            failed = user_path(rule.failed).resolve() if rule.failed else folder / "failed"
            self.rules.append(RuleState(rule, folder, output, failed, folder / "processed", wf, self.ledgers[output],
                                        rule.settle, ceiling_for(rule.settle, rule.ceiling)))
        by_name = {rs.name: rs for rs in self.rules}
        for ledger in self.ledgers.values():  # jobs that were running when a process died: redone once
            for run_dir in ledger.stale_run_dirs():  # their old run folders must not say "running" forever
                if mark_interrupted(run_dir, "interrupted: the watcher's process ended during the run; "
                                             "the file was run again (or failed) on restart"):
                    log.info("%s: marked interrupted", run_dir)
            for sha, rule, path in ledger.recover():
                if rule in by_name and Path(path).exists():
                    self.runner._fail(by_name[rule], Path(path), sha, "interrupted twice while running; not retried",
                                      None, None)

    # --- public API ----------------------------------------------------------------------------
    def start(self) -> None:
        """Watch in background threads; returns at once."""
        self._start_observer()
        self._thread = threading.Thread(target=self._work, args=(False,), name="visionloop-watch", daemon=True)
        self._thread.start()

    def run_once(self) -> dict:
        """Process the files there now (waiting for each to settle), then return the counts."""
        before = dict(self.counts)
        self._work(True)
        return {k: self.counts[k] - before[k] for k in self.counts}

    def run_forever(self) -> None:
        """The CLI's mode: watch in the calling thread until `request_stop()` (a signal)."""
        self._start_observer()
        self._work(False)

    def request_stop(self) -> None:
        self._stop.set()

    def stop(self) -> None:
        """Finish or re-queue the job in hand, stop watching, release the ledgers' locks."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.close()

    def close(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None
        for ledger in self.ledgers.values():
            ledger.close()
        self.ledgers = {}

    def retry_failed(self) -> int:
        """Put every failed file back in its watched folder, with fresh attempts."""
        count = 0
        for rs in self.rules:
            for sha, path in rs.ledger.failed(rs.name):
                p = Path(path)
                if not p.exists():
                    log.warning("%s: failed file is gone; cannot retry it", p)
                    continue
                dest = move_no_clobber(p, rs.folder)
                p.with_name(p.name + ".error.json").unlink(missing_ok=True)
                rs.ledger.requeue(sha, rs.name, dest)
                count += 1
        return count

    def status(self) -> dict:
        out = {}
        for rs in self.rules:
            out[rs.name] = rs.ledger.counts().get(rs.name, {})
        return out

    # --- the work loop ---------------------------------------------------------------------------
    def _start_observer(self) -> None:
        targets = [(rs.folder, rs.rule.recursive, self._event_for(rs)) for rs in self.rules]
        self._observer = start_observer(targets, self.poll, poll_interval=min(1.0, min(r.settle for r in self.rules) or 1))

    def _event_for(self, rs: RuleState):
        def on_event(kind: str, raw: str) -> None:
            path = Path(raw)
            try:
                if kind == "gone":
                    self.tracker.drop(path)
                elif path.is_dir() and rs.rule.recursive and not self._skipped(rs, path):
                    # a folder moved in: every file inside (the ledger sorts out any seen before)
                    for entry in scan(path, rs.rule.patterns, True, {rs.failed, rs.processed, rs.output}):
                        self.tracker.touch(Path(entry.path), rs.name, rs.settle, rs.ceiling)
                elif self._takes(rs, path):
                    self.tracker.touch(path, rs.name, rs.settle, rs.ceiling)
            except Exception:  # never kill the observer's thread; the rescan still finds the file
                log.exception("%s: cannot handle a %s event", path, kind)
        return on_event

    def _skipped(self, rs: RuleState, path: Path) -> bool:
        return any(_inside(path, p) for p in (rs.failed, rs.processed, rs.output))

    def _takes(self, rs: RuleState, path: Path) -> bool:
        if not wanted(path.name, rs.rule.patterns) or self._skipped(rs, path):
            return False
        parent = path.parent
        return parent == rs.folder or (rs.rule.recursive and _inside(parent, rs.folder))

    def _scan_rule(self, rs: RuleState) -> None:
        for entry in scan(rs.folder, rs.rule.patterns, rs.rule.recursive, {rs.failed, rs.processed, rs.output}):
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            path = Path(entry.path)
            if not rs.ledger.seen(path, rs.name, st.st_size, st.st_ctime_ns):
                self.tracker.touch(path, rs.name, rs.settle, rs.ceiling)
            else:
                self._skip(rs, path, st.st_size, st.st_ctime_ns)

    def _skip(self, rs: RuleState, path: Path, size: int, ctime_ns: int) -> None:
        """Count a file left alone (done before, duplicate, unreadable) once, not per rescan."""
        key = (rs.name, path, size, ctime_ns)
        if key not in self._left_alone:
            self._left_alone.add(key)
            self.counts["skipped"] += 1

    def _work(self, until_idle: bool) -> None:
        rescan = min(rs.rule.rescan for rs in self.rules)
        tick = max(0.02, min(0.25, min(rs.settle for rs in self.rules) / 4))
        last_scan = -1e9
        while not self._stop.is_set():
            if time.monotonic() - last_scan >= rescan:
                for rs in self.rules:
                    self._scan_rule(rs)
                last_scan = time.monotonic()
            ready = self.tracker.poll(empty_is_final=until_idle)  # --once: no writer will come back
            if until_idle:
                self._note_waiting()
            while self._retries and self._retries[0][0] <= time.monotonic():
                ready.append(heapq.heappop(self._retries)[2])
            for item in ready:
                if self._stop.is_set():
                    break
                self._handle(item)
            if until_idle and not len(self.tracker) and not self._retries:
                return
            wait = self.tracker.next_wait(tick)
            if self._retries:
                wait = min(wait, max(0.01, self._retries[0][0] - time.monotonic()))
            self._stop.wait(wait)

    def _note_waiting(self) -> None:
        """Name each file `run_once` has waited on for `wait_note_after` s, once, so a pass that
        takes minutes (a file still being written, up to its ceiling) says why."""
        now = time.monotonic()
        for item in self.tracker.pending():
            waited = now - item.first_seen
            if waited < self.wait_note_after or (item.path, item.key) in self._waited_on:
                continue
            self._waited_on.add((item.path, item.key))
            self.on_wait(f"[{item.key}] waiting for {item.path}: not settled after {waited:.0f} s ({item.size} bytes, "
                         f"changed {now - item.last_change:.0f} s ago; needs {item.settle:g} s unchanged, goes to "
                         f"failed/ after {item.ceiling:g} s)")

    def _handle(self, item: Ready) -> None:
        rs = next(r for r in self.rules if r.name == item.key)
        try:
            result = self.runner.process(rs, item)
        except Exception as exc:  # a bug or an unexpected OS error must not stop the watcher
            log.exception("%s: unexpected error in the watcher", item.path)
            result = Result("retry", item.path, str(exc), retry_in=30.0)
        if result.job_started is not None:
            self.latencies.append(result.job_started - item.settled_at)
        if result.kind == "changed":
            self.tracker.touch(item.path, rs.name, rs.settle, rs.ceiling)
        elif result.kind == "retry":
            self._seq += 1
            heapq.heappush(self._retries, (time.monotonic() + result.retry_in, self._seq, item))
        elif result.kind == "done":
            self.counts["processed"] += 1
            self.announce(f"[{rs.name}] {item.path.name}: done -> {result.run_dir}")
        elif result.kind == "failed":
            self.counts["failed"] += 1
            self.announce(f"[{rs.name}] {item.path.name}: failed ({result.detail}) -> {result.extra.get('moved_to')}")
        elif result.kind == "skipped":
            try:
                st = item.path.stat()
                self._skip(rs, item.path, st.st_size, st.st_ctime_ns)
            except OSError:
                self.counts["skipped"] += 1
