"""The ledger: which files a watcher has seen, by content, so that nothing runs twice.

One sqlite database (WAL mode) per output folder, in the user state folder. A file is keyed by
the sha256 of its bytes and the rule name; its row walks queued -> running -> done | failed.
The same bytes under a second name get a `duplicate` row of their own and never run again.
A `running` row left by a process that died is redone once; a second death marks it failed.

A lock file beside the database (filelock, plus the holder's pid in `.pid`) keeps a second
watcher off the same output folder; `--status` reads without the lock (WAL allows it).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import filelock
import platformdirs

from agent.config import APP
from agent.errors import VisionloopError
from agent.paths import user_path

STATES = ("queued", "running", "done", "failed", "duplicate")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    sha TEXT NOT NULL, rule TEXT NOT NULL, path TEXT NOT NULL, state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, redone INTEGER NOT NULL DEFAULT 0,
    error TEXT, step TEXT, run_dir TEXT, pid INTEGER, updated REAL NOT NULL,
    PRIMARY KEY (sha, rule));
CREATE TABLE IF NOT EXISTS duplicates (
    path TEXT NOT NULL, rule TEXT NOT NULL, sha TEXT NOT NULL, updated REAL NOT NULL,
    PRIMARY KEY (path, rule, sha));
-- what a rescan has already looked at, so unchanged files are not hashed again
CREATE TABLE IF NOT EXISTS seen (
    path TEXT NOT NULL, rule TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    PRIMARY KEY (path, rule));
-- hashes of files the watcher wrote, so a re-dropped output is never taken as an input
CREATE TABLE IF NOT EXISTS outputs (sha TEXT PRIMARY KEY);
"""


class WatchError(VisionloopError):
    """The watcher cannot start or go on: a lock held, a bad rule, an inotify limit."""


def state_dir() -> Path:
    """Where ledgers live: $VISIONLOOP_STATE_DIR, else the platform's user state folder."""
    env = os.environ.get("VISIONLOOP_STATE_DIR")
    return user_path(env) if env else Path(platformdirs.user_state_dir(APP))


def ledger_path(output: str | os.PathLike) -> Path:
    """The database for one output folder (named by a hash of its resolved path)."""
    resolved = str(user_path(output).resolve())
    digest = hashlib.sha256(resolved.encode()).hexdigest()[:16]
    return state_dir() / "ledgers" / f"{Path(resolved).name or 'root'}-{digest}.sqlite"


@dataclass
class Claim:
    """What `Ledger.claim` decided for one file: `run` it, or skip it and why."""

    action: str  # run | done | failed | busy | duplicate | own-output
    sha: str
    attempts: int = 0


class Ledger:
    def __init__(self, output: str | os.PathLike, lock: bool = True):
        self.output = user_path(output)
        self.path = ledger_path(self.output)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock: filelock.BaseFileLock | None = None
        if lock:
            self._acquire()
        try:
            self.db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across app crashes
            self.db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            self.release()
            raise WatchError(f"{self.path}: the ledger cannot be read ({exc}); move it aside to start "
                             f"afresh (every file in the watched folders would then run again)") from None
        self._mutex = threading.Lock()  # the watcher thread and the loop's worker share the connection

    # --- the lock ------------------------------------------------------------------------------
    def _acquire(self) -> None:
        lock_file = self.path.with_suffix(".lock")
        pid_file = self.path.with_suffix(".pid")
        self._lock = filelock.FileLock(lock_file, timeout=0, thread_local=False, is_singleton=False)
        try:
            self._lock.acquire()
        except filelock.Timeout:
            self._lock = None
            try:
                holder = pid_file.read_text().strip() or "unknown"
            except OSError:
                holder = "unknown"
            raise WatchError(f"{self.output}: already being watched by pid {holder} (lock file {lock_file})") from None
        pid_file.write_text(str(os.getpid()))

    def release(self) -> None:
        if self._lock is not None:
            try:
                self.path.with_suffix(".pid").unlink(missing_ok=True)
            finally:
                self._lock.release()
                self._lock = None

    def close(self) -> None:
        with self._mutex:
            self.db.close()
        self.release()

    # --- transitions -----------------------------------------------------------------------------
    def _tx(self):
        return _Tx(self)

    def recover(self) -> list[tuple[str, str, str]]:
        """At start (lock held): stale `running` rows go back to `queued` once; a row that was
        already redone is marked failed. Returns (sha, rule, path) of the rows failed here."""
        now = time.time()
        with self._tx() as db:
            gave_up = db.execute("SELECT sha, rule, path FROM files WHERE state='running' AND redone>0").fetchall()
            db.execute("UPDATE files SET state='failed', error='interrupted twice while running; not retried', "
                       "updated=? WHERE state='running' AND redone>0", (now,))
            db.execute("UPDATE files SET state='queued', redone=1, updated=? WHERE state='running'", (now,))
        return [tuple(r) for r in gave_up]

    def claim(self, sha: str, rule: str, path: Path) -> Claim:
        """Decide, atomically, whether this file (already hashed) should run."""
        now, spath = time.time(), str(path)
        with self._tx() as db:
            if db.execute("SELECT 1 FROM outputs WHERE sha=?", (sha,)).fetchone():
                return Claim("own-output", sha)
            row = db.execute("SELECT path, state, attempts FROM files WHERE sha=? AND rule=?", (sha, rule)).fetchone()
            if row is None:
                db.execute("INSERT INTO files (sha, rule, path, state, pid, updated) VALUES (?,?,?,?,?,?)",
                           (sha, rule, spath, "queued", os.getpid(), now))
                return Claim("run", sha)
            old_path, state, attempts = row
            if old_path != spath and not (state == "queued" and not Path(old_path).exists()):
                db.execute("INSERT OR REPLACE INTO duplicates VALUES (?,?,?,?)", (spath, rule, sha, now))
                return Claim("duplicate", sha)
            if state == "queued":
                db.execute("UPDATE files SET path=?, pid=?, updated=? WHERE sha=? AND rule=?",
                           (spath, os.getpid(), now, sha, rule))
                return Claim("run", sha, attempts)
            return Claim("busy" if state == "running" else state, sha)

    def stale_run_dirs(self) -> list[str]:
        """At start (lock held), before `recover`: the run folders of `running` rows, whose
        manifests a dead process left saying "running"."""
        with self._tx() as db:
            return [r[0] for r in db.execute("SELECT run_dir FROM files WHERE state='running' AND run_dir IS NOT NULL")]

    def start(self, sha: str, rule: str) -> None:
        """The job is in the loop's hands now (its run folder, from an earlier attempt, is forgotten)."""
        with self._tx() as db:
            db.execute("UPDATE files SET state='running', attempts=attempts+1, run_dir=NULL, pid=?, updated=? "
                       "WHERE sha=? AND rule=?", (os.getpid(), time.time(), sha, rule))

    def set_run_dir(self, sha: str, rule: str, run_dir: str) -> None:
        """The running job's run folder exists now."""
        with self._tx() as db:
            db.execute("UPDATE files SET run_dir=?, updated=? WHERE sha=? AND rule=?",
                       (run_dir, time.time(), sha, rule))

    def finish(self, sha: str, rule: str, state: str, *, path: Path | None = None, error: str | None = None,
               step: str | None = None, run_dir: str | None = None, outputs: list[str] = ()) -> None:
        assert state in STATES
        with self._tx() as db:
            db.execute("UPDATE files SET state=?, error=?, step=?, run_dir=COALESCE(?, run_dir), "
                       "path=COALESCE(?, path), updated=? WHERE sha=? AND rule=?",
                       (state, error, step, run_dir, str(path) if path else None, time.time(), sha, rule))
            db.executemany("INSERT OR IGNORE INTO outputs VALUES (?)", [(h,) for h in outputs])

    def attempts(self, sha: str, rule: str) -> int:
        with self._tx() as db:
            row = db.execute("SELECT attempts FROM files WHERE sha=? AND rule=?", (sha, rule)).fetchone()
        return row[0] if row else 0

    def failed(self, rule: str) -> list[tuple[str, str]]:
        with self._tx() as db:
            return [tuple(r) for r in db.execute("SELECT sha, path FROM files WHERE rule=? AND state='failed'", (rule,))]

    def requeue(self, sha: str, rule: str, path: Path) -> None:
        """`--retry-failed`: back in line with fresh attempts."""
        with self._tx() as db:
            db.execute("UPDATE files SET state='queued', attempts=0, redone=0, error=NULL, step=NULL, path=?, "
                       "updated=? WHERE sha=? AND rule=?", (str(path), time.time(), sha, rule))

    # --- the rescan's memory ---------------------------------------------------------------------
    def seen(self, path: Path, rule: str, size: int, mtime_ns: int) -> bool:
        with self._tx() as db:
            row = db.execute("SELECT size, mtime_ns FROM seen WHERE path=? AND rule=?", (str(path), rule)).fetchone()
        return row == (size, mtime_ns)

    def mark_seen(self, path: Path, rule: str, size: int, mtime_ns: int) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO seen VALUES (?,?,?,?)", (str(path), rule, size, mtime_ns))

    def counts(self) -> dict[str, dict[str, int]]:
        """{rule: {state: count}} for `--status`."""
        out: dict[str, dict[str, int]] = {}
        with self._tx() as db:
            for rule, state, n in db.execute("SELECT rule, state, COUNT(*) FROM files GROUP BY rule, state"):
                out.setdefault(rule, dict.fromkeys(STATES, 0))[state] = n
            for rule, n in db.execute("SELECT rule, COUNT(*) FROM duplicates GROUP BY rule"):
                out.setdefault(rule, dict.fromkeys(STATES, 0))["duplicate"] = n
        return out

    def rows(self, rule: str | None = None) -> list[dict]:
        """Every file row (for tests and `--status --json`)."""
        with self._tx() as db:
            cur = db.execute("SELECT sha, rule, path, state, attempts, redone, error, step, run_dir FROM files"
                             + (" WHERE rule=?" if rule else ""), (rule,) if rule else ())
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r)) for r in cur.fetchall()]


class _Tx:
    """`with ledger._tx() as db:` one immediate transaction under the connection mutex."""

    def __init__(self, ledger: Ledger):
        self.ledger = ledger

    def __enter__(self) -> sqlite3.Connection:
        self.ledger._mutex.acquire()
        self.ledger.db.execute("BEGIN IMMEDIATE")
        return self.ledger.db

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.ledger.db.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self.ledger._mutex.release()
