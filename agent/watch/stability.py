"""Which files a rule takes, and when: name filters and the stability gate.

A file is taken only once its size and mtime have stayed the same for `settle` seconds and it
is still a regular file (close-write and rename events only make us look sooner). Partial
downloads, sync-tool temporaries, OS junk and hidden files are never taken. A file that keeps
changing past the ceiling, or stays empty, is handed on as `unstable` so it can go to failed/
instead of waiting forever. A one-off pass (`watch --once`) has no later to wait for: there an
empty file that has settled fails at once, since no writer is expected to come back to it.
"""

from __future__ import annotations

import fnmatch
import os
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path

#: Names never taken (matched case-insensitively). Hidden files (".*") are skipped as well.
IGNORED_NAMES = ("*.part", "*.partial", "*.crdownload", "*.download", "*.tmp", ".syncthing.*", "~syncthing~*",
                 "._*", ".ds_store", "thumbs.db", "desktop.ini", "*.sync-conflict-*")
#: Folders never entered in recursive mode (besides hidden ones and the rule's failed/processed).
IGNORED_DIRS = ("@eadir", "__macosx", "$recycle.bin", "system volume information")


def ignored_name(name: str) -> bool:
    low = name.lower()
    return low.startswith(".") or any(fnmatch.fnmatchcase(low, pat) for pat in IGNORED_NAMES)


def ignored_dir(name: str) -> bool:
    return name.startswith(".") or name.lower() in IGNORED_DIRS


def wanted(name: str, patterns: list[str]) -> bool:
    """Does a rule take a file of this name? Patterns are globs on the name, case-insensitive
    (`*.jpg` takes `IMG.JPG`)."""
    if ignored_name(name):
        return False
    low = name.lower()
    return any(fnmatch.fnmatchcase(low, p.lower()) for p in patterns)


def ceiling_for(settle: float, ceiling: float | None) -> float:
    return ceiling if ceiling is not None else max(300.0, 20 * settle)


@dataclass
class Pending:
    path: Path
    key: str  # the rule's name
    settle: float
    ceiling: float
    first_seen: float
    last_change: float
    size: int
    mtime_ns: int
    settled_at: float = 0.0  # when the file had been quiet for `settle` (for latency figures)


@dataclass
class Ready:
    path: Path
    key: str
    size: int
    mtime_ns: int
    settled_at: float
    problem: str | None = None  # "never became stable ..." or "empty file": goes to failed/


class Tracker:
    """Per-path debounce; thread-safe (watchdog's thread adds, the watcher's thread polls)."""

    def __init__(self):
        self._pending: dict[tuple[Path, str], Pending] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._pending)

    def touch(self, path: Path, key: str, settle: float, ceiling: float) -> None:
        """An event or a scan saw `path`: start tracking it, or look at it again soon."""
        try:
            st = os.stat(path, follow_symlinks=False)
        except OSError:
            self.drop(path)
            return
        if not stat.S_ISREG(st.st_mode):
            return
        now = time.monotonic()
        with self._lock:
            item = self._pending.get((path, key))
            if item is None:
                # A file whose mtime is already `settle` old (a catch-up scan) needs only one more
                # identical look; mtime moves on every write, so a file being written is never old.
                age = max(0.0, time.time() - st.st_mtime_ns / 1e9)
                self._pending[(path, key)] = Pending(path, key, settle, ceiling, now, now - min(age, settle),
                                                     st.st_size, st.st_mtime_ns)

    def drop(self, path: Path) -> None:
        with self._lock:
            for k in [k for k in self._pending if k[0] == path]:
                del self._pending[k]

    def poll(self, empty_is_final: bool = False) -> list[Ready]:
        """Re-stat every pending file; return (and forget) those that are ready. With
        `empty_is_final` (a one-off pass) a file settled at 0 bytes is ready as "empty file" at
        once; otherwise it gets until the ceiling, in case its writer only created it so far."""
        now = time.monotonic()
        ready: list[Ready] = []
        with self._lock:
            items = list(self._pending.items())
        for k, item in items:
            try:
                st = os.stat(item.path, follow_symlinks=False)
            except OSError:  # deleted or renamed before it settled: silently dropped
                with self._lock:
                    self._pending.pop(k, None)
                continue
            if not stat.S_ISREG(st.st_mode):
                with self._lock:
                    self._pending.pop(k, None)
                continue
            if (st.st_size, st.st_mtime_ns) != (item.size, item.mtime_ns):
                item.size, item.mtime_ns, item.last_change = st.st_size, st.st_mtime_ns, now
            quiet = now - item.last_change >= item.settle
            waited = now - item.first_seen
            problem = None
            if quiet and item.size > 0:
                pass
            elif quiet and empty_is_final:
                problem = "empty file"
            elif waited >= item.ceiling:
                problem = "empty file" if item.size == 0 else f"never became stable within {item.ceiling:g} s"
            else:
                continue
            settled = time.time() - (now - (item.last_change + item.settle)) if quiet else time.time()
            ready.append(Ready(item.path, item.key, item.size, item.mtime_ns, settled, problem))
            with self._lock:
                self._pending.pop(k, None)
        return ready

    def pending(self) -> list[Pending]:
        """A snapshot of the files not yet settled (for `watch --once`'s waiting notes)."""
        with self._lock:
            return list(self._pending.values())

    def next_wait(self, default: float) -> float:
        """How long the watcher may sleep before the next `poll` is useful."""
        with self._lock:
            if not self._pending:
                return default
            now = time.monotonic()
            soonest = min(max(0.0, p.last_change + p.settle - now) for p in self._pending.values())
        return min(default, max(0.01, soonest))
