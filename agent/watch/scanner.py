"""Finding files: the full scan (at start and periodically) and filesystem events (watchdog).

Events are only hints that make the watcher look sooner; the periodic scan is what guarantees
that nothing is missed when the kernel drops events (queue overflow, network shares, a
watcher that was down). `--poll` swaps the native observer for watchdog's PollingObserver.
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path
from typing import Callable, Iterator

from visionloop.watch.ledger import WatchError
from visionloop.watch.names import shown
from visionloop.watch.stability import ignored_dir, wanted

log = logging.getLogger(__name__)


def scan(folder: Path, patterns: list[str], recursive: bool, skip: set[Path]) -> Iterator[os.DirEntry]:
    """Regular files (symlinks are not followed) in `folder` that a rule takes; folders in
    `skip` (failed/, processed/) and hidden or junk folders are not entered. A `folder` that is
    itself a symbolic link yields nothing: links are never followed, into files or folders."""
    if os.path.islink(folder):
        return
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError as exc:  # no permission, a loop, an I/O error: said, and the rest goes on
        log.warning("%s: cannot list folder: %s", shown(folder), exc.strerror or exc)
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            if recursive and not ignored_dir(entry.name) and Path(entry.path) not in skip:
                yield from scan(Path(entry.path), patterns, recursive, skip)
        elif entry.is_file(follow_symlinks=False) and wanted(entry.name, patterns):
            yield entry


def unmatched_note(folder: Path, patterns: list[str], recursive: bool, skip: set[Path]) -> str | None:
    """When a rule takes none of the files in its folder but other files are there (a pattern
    that matches nothing, e.g. `*.tiff` for `.tif` files), a line saying so; else None."""
    if any(True for _ in scan(folder, patterns, recursive, skip)):
        return None
    others = sorted(e.name for e in scan(folder, ["*"], recursive, skip))
    if not others:
        return None
    shown_names = ", ".join(shown(n) for n in others[:3]) + (", ..." if len(others) > 3 else "")
    return (f"{shown(folder)}: no file there matches the patterns {' '.join(patterns)} "
            f"({len(others)} other file(s): {shown_names}); check the rule's `patterns` (--pattern)")


def inotify_message(exc: OSError, folder: Path) -> str:
    """One paragraph for the kernel's watch limits (watchdog raises ENOSPC or EMFILE)."""
    if exc.errno == errno.EMFILE:
        knob = "fs.inotify.max_user_instances"
        what = "too many inotify instances are open"
    else:
        knob = "fs.inotify.max_user_watches"
        what = "the inotify watch limit is reached"
    return (f"{shown(folder)}: cannot watch this folder: {what} ({exc.strerror or exc}). Raise the limit with "
            f"`sudo sysctl {knob}=524288` (add it to /etc/sysctl.conf to keep it), or run "
            f"`visionloop watch --poll` to poll the folder instead of using inotify events "
            f"(also the mode for network shares, where events do not arrive).")


def start_observer(targets: list[tuple[Path, bool, Callable[[str, str | None], None]]], poll: bool,
                   poll_interval: float = 1.0):
    """Start one watchdog observer for every (folder, recursive, callback(kind, path)) target.

    kind is "change" (created, modified, closed, moved here) or "gone" (deleted, moved away).
    """
    from watchdog.events import FileSystemEventHandler
    from watchdog.observers import Observer
    from watchdog.observers.polling import PollingObserver

    class Handler(FileSystemEventHandler):
        def __init__(self, callback):
            self.callback = callback

        def on_any_event(self, event):
            kind = event.event_type
            if kind in ("opened", "closed_no_write"):
                return
            if kind == "moved":
                self.callback("gone", event.src_path)
                self.callback("change", event.dest_path)
            elif kind == "deleted":
                self.callback("gone", event.src_path)
            else:  # created, modified, closed (close-write: a hint, the stability gate decides)
                self.callback("change", event.src_path)

    observer = PollingObserver(timeout=poll_interval) if poll else Observer()
    try:
        for folder, recursive, callback in targets:
            observer.schedule(Handler(callback), str(folder), recursive=recursive)
        observer.start()
    except OSError as exc:
        observer.stop()
        if exc.errno in (errno.ENOSPC, errno.EMFILE):
            raise WatchError(inotify_message(exc, targets[0][0])) from None
        raise WatchError(f"{shown(targets[0][0])}: cannot watch folder: {exc.strerror or exc}") from None
    return observer
