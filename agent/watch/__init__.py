"""Folder watching: every new file matching a rule runs a workflow, once, and nothing is lost.

    from agent.watch import Watcher
    watcher = Watcher(config.watch, loop, registry, config, announce=print)
    watcher.start() ... watcher.stop()        # or: counts = watcher.run_once()

Modules: `ledger` (sqlite record by sha256 + rule, the per-output lock), `stability` (name
filters, the settle gate), `scanner` (full scans, watchdog events, inotify limits), `runner`
(one file through the loop, failed/ and retries), `watcher` (the threads that tie them).
"""

from agent.watch.ledger import Ledger, WatchError, ledger_path, state_dir
from agent.watch.watcher import Watcher

__all__ = ["Watcher", "WatchError", "Ledger", "ledger_path", "state_dir"]
