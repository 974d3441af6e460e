"""The lock that keeps a second watcher off an output folder, and the mark that says a ledger
existed for it.

The lock is a file beside the ledger's database (filelock; the holder's pid in `.pid`), so a
second `visionloop watch` on the same output folder stops with "already being watched by pid
N". The mark (`.visionloop-ledger` in the output folder) is written once the ledger holds
work: a ledger that is later missing or empty while the mark is there was lost (deleted,
truncated, another VISIONLOOP_STATE_DIR), and the watcher refuses to start rather than run
every file again unasked.
"""

from __future__ import annotations

import os
from pathlib import Path

import filelock

from visionloop.watch.names import shown

MARK = ".visionloop-ledger"


class Locked(Exception):
    """Another process holds the output folder's lock (the message names it)."""


class OutputLock:
    def __init__(self, db_path: Path, output: Path):
        self.lock_file = db_path.with_suffix(".lock")
        self.pid_file = db_path.with_suffix(".pid")
        self.output = output
        self._lock: filelock.BaseFileLock | None = None

    def acquire(self) -> None:
        lock = filelock.FileLock(self.lock_file, timeout=0, thread_local=False, is_singleton=False)
        try:
            lock.acquire()
        except filelock.Timeout:
            try:
                holder = self.pid_file.read_text().strip() or "unknown"
            except OSError:
                holder = "unknown"
            raise Locked(f"{shown(self.output)}: already being watched by pid {holder} "
                         f"(lock file {shown(self.lock_file)})") from None
        self._lock = lock
        self.pid_file.write_text(str(os.getpid()))

    def release(self) -> None:
        if self._lock is not None:
            try:
                self.pid_file.unlink(missing_ok=True)
            finally:
                self._lock.release()
                self._lock = None


def lost_ledger(db_path: Path, output: Path) -> bool:
    """The output folder's mark says a ledger was kept for it, but the database is missing or
    empty: the ledger was lost, and a fresh one would run every file again."""
    try:
        empty = not db_path.exists() or db_path.stat().st_size == 0
    except OSError:
        return False
    return empty and (output / MARK).is_file()


def mark(db_path: Path, output: Path) -> None:
    """Leave the mark in the output folder (once; a folder that cannot take it is no error)."""
    spot = output / MARK
    if spot.is_file():
        return
    try:
        spot.write_text(f"visionloop watch keeps this folder's ledger in {db_path}\n"
                        f"(if it is lost, `visionloop watch --reprocess` runs every file again)\n")
    except OSError:
        pass
