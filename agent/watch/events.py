"""Filesystem events as hints, and the watched folders' health.

`FolderEvents` runs the watchdog observer for every rule and turns its events into `Tracker`
touches: only regular files and real folders inside the watched folder, reached without a
symbolic link on the way (a link, to a file or a folder, is never followed). It also notices a
watched folder that was deleted (one warning) or deleted and made again (a warning, the
observer re-armed, the folder scanned at once), since the OS watch dies with the old folder.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Callable

from visionloop.watch.ledger import WatchError
from visionloop.watch.names import one_line, shown
from visionloop.watch.rules import RuleState, folder_identity, inside
from visionloop.watch.scanner import scan, start_observer
from visionloop.watch.stability import Tracker, wanted

log = logging.getLogger(__name__)


def real_inside(rs: RuleState, path: Path) -> bool:
    """`path` lies inside the watched folder with no symbolic link on the way."""
    real = os.path.realpath(path)
    return real == str(path) and inside(Path(real), rs.folder)


def skipped(rs: RuleState, path: Path) -> bool:
    """In the rule's failed/, processed/ or output folder: never taken."""
    return any(inside(path, p) for p in (rs.failed, rs.processed, rs.output))


def takes(rs: RuleState, path: Path) -> bool:
    """Does the rule take the file at `path` (named by an event)?"""
    if not wanted(path.name, rs.rule.patterns) or skipped(rs, path):
        return False
    parent = path.parent
    if not (parent == rs.folder or (rs.rule.recursive and inside(parent, rs.folder))):
        return False
    return real_inside(rs, parent)


class FolderEvents:
    def __init__(self, rules: list[RuleState], tracker: Tracker, poll: bool, rescan: Callable[[RuleState], None]):
        self.rules, self.tracker, self.poll, self.rescan = rules, tracker, poll, rescan
        self._observer = None
        self._armed = False  # watching with events (not a one-off pass): re-armed if a folder comes back
        self._gone: set[str] = set()  # rules whose watched folder itself was deleted or moved away

    def start(self) -> None:
        self._armed = True
        rules = [rs for rs in self.rules if folder_identity(rs.folder) is not None]
        if rules:
            targets = [(rs.folder, rs.rule.recursive, self.handler(rs)) for rs in rules]
            interval = min(1.0, min(r.settle for r in self.rules) or 1)
            self._observer = start_observer(targets, self.poll, poll_interval=interval)

    def stop(self) -> bool:
        """Stop the observer, waiting at most 5 s; False (and a warning) if it did not stop."""
        observer, self._observer = self._observer, None
        if observer is None:
            return True
        observer.stop()
        observer.join(timeout=5)
        if observer.is_alive():
            log.warning("the filesystem observer did not stop within 5 s; leaving it")
            return False
        return True

    def handler(self, rs: RuleState) -> Callable[[str, str], None]:
        def on_event(kind: str, raw: str) -> None:
            path = Path(raw)
            try:
                if kind == "gone":
                    if path == rs.folder:
                        self._gone.add(rs.name)
                    self.tracker.drop(path)
                    return
                try:
                    mode = os.lstat(path).st_mode  # never follow a link, to a file or a folder
                except OSError:
                    return
                if stat.S_ISDIR(mode) and rs.rule.recursive and not skipped(rs, path) and real_inside(rs, path):
                    # a folder moved in: every file inside (the ledger sorts out any seen before)
                    for entry in scan(path, rs.rule.patterns, True, {rs.failed, rs.processed, rs.output}):
                        self.tracker.touch(Path(entry.path), rs.name, rs.settle, rs.ceiling)
                elif stat.S_ISREG(mode) and takes(rs, path):
                    self.tracker.touch(path, rs.name, rs.settle, rs.ceiling)
            except Exception as exc:  # never kill the observer's thread; the rescan still finds the file
                log.warning("%s: cannot handle a %s event (%s: %s)", shown(path), kind, type(exc).__name__,
                            one_line(exc))
        return on_event

    def check_folders(self) -> None:
        """Called by the watcher's loop on every tick (one lstat per rule)."""
        rearm = False
        for rs in self.rules:
            now = folder_identity(rs.folder)
            if now is None:
                self._gone.discard(rs.name)
                if not rs.missing:
                    rs.missing = True
                    log.warning("%s: the watched folder is gone (watch rule %r); waiting for it to come back",
                                shown(rs.folder), rs.name)
                rs.identity = None
            elif now != rs.identity or rs.name in self._gone:  # made again (or moved away and back)
                self._gone.discard(rs.name)
                rs.identity, rs.missing = now, False
                log.warning("%s: the watched folder was made again (watch rule %r); watching it again",
                            shown(rs.folder), rs.name)
                self.rescan(rs)
                rearm = True
        if rearm and self._armed:
            self.stop()
            try:
                self.start()
            except WatchError as exc:
                log.warning("%s; relying on the periodic rescan", exc)
