"""Folder watching: every new file matching a rule runs a workflow, once, and nothing is lost.

    from visionloop.watch import Watcher
    watcher = Watcher(config.watch, loop, registry, config, announce=print)
    watcher.start() ... watcher.stop()        # or: counts = watcher.run_once()

Modules: `ledger` (sqlite record by sha256 + rule + fingerprint), `ledger_lock` (the per-output lock, the lost-ledger mark) and
`ledger_schema` (tables, migration), `rules` (rules resolved and checked), `stability` (name
filters, the settle gate), `scanner` (full scans, the observer, inotify limits), `events`
(events as hints, the watched folders' health), `runner` (one file through the loop, retries),
`outcome` (done, failed/, the error record, safe moves), `names` (names on one line), `watcher`
(the thread that ties them).
"""

from visionloop.watch.ledger import Ledger, WatchError, ledger_path, state_dir
from visionloop.watch.watcher import Watcher

__all__ = ["Watcher", "WatchError", "Ledger", "ledger_path", "state_dir"]
