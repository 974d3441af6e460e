"""The ledger: which files a watcher has seen, by content, so that nothing runs twice.

One sqlite database (WAL mode) per output folder, in the user state folder. A file is keyed by
the sha256 of its bytes, the rule name and the rule's fingerprint (`Key`: the workflow's content
and its input, so another workflow on the same folder runs every file again); its row walks
queued -> running -> done | failed. The same bytes under a second name get a `duplicate` row of
their own and never run again. A `running` row left by a process that died is redone once; a
second death marks it failed. Tables, schema version and migration: `ledger_schema`.

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
from typing import NamedTuple

import platformdirs

from visionloop.config import APP
from visionloop.errors import VisionloopError
from visionloop.paths import resolved_path, user_path
from visionloop.watch.ledger_lock import Locked, OutputLock, lost_ledger, mark
from visionloop.watch.ledger_schema import LEGACY, STATES, SchemaError, from_db, prepare, to_db, to_text
from visionloop.watch.names import shown

FINAL = ("done", "failed")  # a file in one of these states is left alone until it changes


class WatchError(VisionloopError):
    """The watcher cannot start or go on: a lock held, a bad rule, an inotify limit."""


def state_dir() -> Path:
    """Where ledgers live: $VISIONLOOP_STATE_DIR, else the platform's user state folder."""
    env = os.environ.get("VISIONLOOP_STATE_DIR")
    return user_path(env, "VISIONLOOP_STATE_DIR") if env else Path(platformdirs.user_state_dir(APP))


def ledger_path(output: str | os.PathLike) -> Path:
    """The database for one output folder (named by a hash of its resolved path)."""
    resolved = str(resolved_path(output))
    digest = hashlib.sha256(os.fsencode(resolved)).hexdigest()[:16]
    label = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(resolved).name) or "root"
    return state_dir() / "ledgers" / f"{label[:64]}-{digest}.sqlite"


class Key(NamedTuple):
    """One file under one rule: its content, the rule's name, the rule's fingerprint."""

    sha: str
    rule: str
    fp: str


@dataclass
class Claim:
    """What `Ledger.claim` decided for one file: `run` it, or skip it and why."""

    action: str  # run | done | failed | busy | duplicate | own-output
    key: Key
    attempts: int = 0


class Ledger:
    def __init__(self, output: str | os.PathLike, lock: bool = True, lost_ok: bool = False):
        self.output = user_path(output)
        self.path = ledger_path(self.output)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WatchError(f"{shown(self.path.parent)}: cannot create the ledger folder "
                             f"({exc.strerror or exc}); set VISIONLOOP_STATE_DIR to a folder you can write") from None
        self._lock = OutputLock(self.path, self.output) if lock else None
        if self._lock is not None:
            try:
                self._lock.acquire()
            except Locked as exc:
                raise WatchError(str(exc)) from None
            if lost_ledger(self.path, self.output) and not lost_ok:
                self.release()
                raise WatchError(f"{shown(self.path)}: the ledger of {shown(self.output)} is missing or empty, but "
                                 f"files were watched into that folder before; refusing to run them all again "
                                 f"(restore the ledger, or use --reprocess to run every file again)")
        self._marked = False
        self.db = None
        try:
            self.db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across app crashes
            prepare(self.db)
        except (sqlite3.DatabaseError, SchemaError) as exc:
            if self.db is not None:
                self.db.close()
            self.release()
            if isinstance(exc, SchemaError):
                raise WatchError(f"{shown(self.path)}: this ledger is {exc}") from None
            raise WatchError(f"{shown(self.path)}: the ledger cannot be read ({exc}); move it aside to start "
                             f"afresh (every file in the watched folders would then run again)") from None
        self._mutex = threading.Lock()  # the watcher thread and the loop's worker share the connection

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()

    def close(self) -> None:
        with self._mutex:
            self.db.close()
        self.release()

    # --- transitions -----------------------------------------------------------------------------
    def _tx(self):
        return _Tx(self)

    def adopt_legacy(self, rule: str, fp: str) -> int:
        """Rows migrated from a version-1 ledger take this rule's fingerprint (see ledger_schema)."""
        with self._tx() as db:
            return db.execute("UPDATE OR IGNORE files SET fp=? WHERE rule=? AND fp=?", (fp, rule, LEGACY)).rowcount \
                + db.execute("UPDATE OR IGNORE duplicates SET fp=? WHERE rule=? AND fp=?", (fp, rule, LEGACY)).rowcount

    def recover(self) -> list[tuple[Key, str]]:
        """At start (lock held): stale `running` rows go back to `queued` once; a row that was
        already redone is marked failed; a `queued` row whose file is gone is forgotten (it never
        ran; if the file comes back it is new). Returns (key, path) of the rows failed here."""
        now = time.time()
        with self._tx() as db:
            gave_up = db.execute("SELECT sha, rule, fp, path FROM files WHERE state='running' AND redone>0").fetchall()
            db.execute("UPDATE files SET state='failed', error='interrupted twice while running; not retried', "
                       "updated=? WHERE state='running' AND redone>0", (now,))
            db.execute("UPDATE files SET state='queued', redone=1, updated=? WHERE state='running'", (now,))
            for sha, rule, fp, path in db.execute("SELECT sha, rule, fp, path FROM files WHERE state='queued'").fetchall():
                if not os.path.lexists(from_db(path)):
                    db.execute("DELETE FROM files WHERE sha=? AND rule=? AND fp=?", (sha, rule, fp))
        return [(Key(sha, rule, fp), from_db(path)) for sha, rule, fp, path in gave_up]

    def claim(self, key: Key, path: Path, reprocess: bool = False) -> Claim:
        """Decide, atomically, whether this file (already hashed) should run. With `reprocess`
        a file already done or failed under this key is put back in line (`--reprocess`)."""
        now, spath = time.time(), to_db(path)
        sha, rule, fp = key
        with self._tx() as db:
            if db.execute("SELECT 1 FROM outputs WHERE sha=?", (sha,)).fetchone():
                return Claim("own-output", key)
            row = db.execute("SELECT path, state, attempts FROM files WHERE sha=? AND rule=? AND fp=?", key).fetchone()
            if row is None:
                db.execute("INSERT INTO files (sha, rule, fp, path, state, pid, updated) VALUES (?,?,?,?,?,?,?)",
                           (sha, rule, fp, spath, "queued", os.getpid(), now))
                return Claim("run", key)
            old_path, state, attempts = row
            takes_over = old_path == spath or not os.path.lexists(from_db(old_path))
            if reprocess and state in FINAL and takes_over:
                db.execute("UPDATE files SET state='queued', attempts=0, redone=0, error=NULL, step=NULL, path=?, "
                           "pid=?, updated=? WHERE sha=? AND rule=? AND fp=?", (spath, os.getpid(), now, *key))
                return Claim("run", key)
            if not takes_over or (old_path != spath and state != "queued"):
                db.execute("INSERT OR REPLACE INTO duplicates VALUES (?,?,?,?,?)", (spath, rule, fp, sha, now))
                return Claim("duplicate", key)
            if state == "queued":
                db.execute("UPDATE files SET path=?, pid=?, updated=? WHERE sha=? AND rule=? AND fp=?",
                           (spath, os.getpid(), now, *key))
                return Claim("run", key, attempts)
            return Claim("busy" if state == "running" else state, key)

    def stale_run_dirs(self) -> list[str]:
        """At start (lock held), before `recover`: the run folders of `running` rows, whose
        manifests a dead process left saying "running"."""
        with self._tx() as db:
            return [from_db(r[0]) for r in db.execute("SELECT run_dir FROM files WHERE state='running' AND run_dir IS NOT NULL")]

    def start(self, key: Key) -> None:
        """The job is in the loop's hands now (its run folder, from an earlier attempt, is forgotten)."""
        with self._tx() as db:
            db.execute("UPDATE files SET state='running', attempts=attempts+1, run_dir=NULL, pid=?, updated=? "
                       "WHERE sha=? AND rule=? AND fp=?", (os.getpid(), time.time(), *key))

    def set_run_dir(self, key: Key, run_dir: str) -> None:
        """The running job's run folder exists now."""
        with self._tx() as db:
            db.execute("UPDATE files SET run_dir=?, updated=? WHERE sha=? AND rule=? AND fp=?",
                       (to_db(run_dir), time.time(), *key))

    def finish(self, key: Key, state: str, *, path: Path | None = None, error: str | None = None,
               step: str | None = None, run_dir: str | None = None, outputs: list[str] = ()) -> None:
        if state not in ("queued", "done", "failed"):  # a real check: `assert` is gone under python -O
            raise ValueError(f"a job cannot finish in state {state!r} (queued, done or failed)")
        with self._tx() as db:
            db.execute("UPDATE files SET state=?, error=?, step=?, run_dir=COALESCE(?, run_dir), "
                       "path=COALESCE(?, path), updated=? WHERE sha=? AND rule=? AND fp=?",
                       (state, to_text(error), step, to_db(run_dir), to_db(path), time.time(), *key))
            db.executemany("INSERT OR IGNORE INTO outputs VALUES (?)", [(h,) for h in outputs])
        if state in FINAL and not self._marked and self._lock is not None:
            self._marked = True  # a ledger with work in it: if it is lost, the mark says so
            mark(self.path, self.output)

    def state(self, key: Key) -> str | None:
        with self._tx() as db:
            row = db.execute("SELECT state FROM files WHERE sha=? AND rule=? AND fp=?", key).fetchone()
        return row[0] if row else None

    def attempts(self, key: Key) -> int:
        with self._tx() as db:
            row = db.execute("SELECT attempts FROM files WHERE sha=? AND rule=? AND fp=?", key).fetchone()
        return row[0] if row else 0

    def failure(self, key: Key) -> tuple[str, str] | None:
        """(path, error) of the file that failed under `key`, or None when it did not fail."""
        with self._tx() as db:
            row = db.execute("SELECT path, error FROM files WHERE sha=? AND rule=? AND fp=? AND state='failed'",
                             key).fetchone()
        return (from_db(row[0]), row[1] or "") if row else None

    def failed(self, rule: str, fp: str) -> list[tuple[Key, str]]:
        with self._tx() as db:
            rows = db.execute("SELECT sha, path FROM files WHERE rule=? AND fp=? AND state='failed'", (rule, fp))
            return [(Key(sha, rule, fp), from_db(path)) for sha, path in rows.fetchall()]

    def requeue(self, key: Key, path: Path) -> None:
        """`--retry-failed`: back in line with fresh attempts (and looked at again by the scan)."""
        with self._tx() as db:
            db.execute("UPDATE files SET state='queued', attempts=0, redone=0, error=NULL, step=NULL, path=?, "
                       "updated=? WHERE sha=? AND rule=? AND fp=?", (to_db(path), time.time(), *key))
            db.execute("DELETE FROM seen WHERE path=? AND rule=? AND fp=?", (to_db(path), key.rule, key.fp))

    # --- the scan's memory -------------------------------------------------------------------------
    def known(self, path: Path, rule: str, fp: str, size: int, ctime_ns: int) -> bool:
        """Is this file, unchanged since it was last hashed, finished with (done, failed, a
        duplicate of a finished file, or one of the watcher's own outputs)? Anything else
        (queued, running, never recorded) is looked at again, so no row can be stuck."""
        with self._tx() as db:
            row = db.execute("SELECT sha FROM seen WHERE path=? AND rule=? AND fp=? AND size=? AND mtime_ns=?",
                             (to_db(path), rule, fp, size, ctime_ns)).fetchone()
            if row is None:
                return False
            if db.execute("SELECT 1 FROM outputs WHERE sha=?", row).fetchone():
                return True
            done = db.execute("SELECT 1 FROM files WHERE sha=? AND rule=? AND fp=? AND state IN ('done', 'failed')",
                              (row[0], rule, fp)).fetchone()
            return done is not None

    def mark_seen(self, path: Path, key: Key, size: int, ctime_ns: int) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO seen VALUES (?,?,?,?,?,?)",
                       (to_db(path), key.rule, key.fp, size, ctime_ns, key.sha))

    def forget_seen(self, rule: str, fp: str) -> None:
        """`--reprocess`: the next scan hashes and claims every file again."""
        with self._tx() as db:
            db.execute("DELETE FROM seen WHERE rule=? AND fp=?", (rule, fp))

    def counts(self, fingerprints: dict[str, str] | None = None) -> dict[str, dict[str, int]]:
        """{rule: {state: count}} for `--status`; with `fingerprints` ({rule: fp}) only the rows
        of each rule's current workflow."""
        out: dict[str, dict[str, int]] = {}
        with self._tx() as db:
            for table, select in (("files", "state, COUNT(*)"), ("duplicates", "'duplicate', COUNT(*)")):
                for rule, fp, state, n in db.execute(f"SELECT rule, fp, {select} FROM {table} GROUP BY rule, fp"
                                                     + (", state" if table == "files" else "")):
                    if fingerprints is not None and fingerprints.get(rule) not in (fp, None):
                        continue
                    counts = out.setdefault(rule, dict.fromkeys(STATES, 0))
                    counts[state] += n
        return out

    def rows(self, rule: str | None = None) -> list[dict]:
        """Every file row (for tests and `--status --json`)."""
        with self._tx() as db:
            cur = db.execute("SELECT sha, rule, fp, path, state, attempts, redone, error, step, run_dir FROM files"
                             + (" WHERE rule=?" if rule else ""), (rule,) if rule else ())
            names = [d[0] for d in cur.description]
            return [{n: from_db(v) for n, v in zip(names, r)} for r in cur.fetchall()]


class _Tx:
    """`with ledger._tx() as db:` one immediate transaction under the connection mutex."""

    def __init__(self, ledger: Ledger):
        self.ledger = ledger

    def __enter__(self) -> sqlite3.Connection:
        self.ledger._mutex.acquire()
        try:
            self.ledger.db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.ledger._mutex.release()
            raise
        return self.ledger.db

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.ledger.db.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self.ledger._mutex.release()
