"""CPU threads: one fixed intra-op thread count per process, so repeated runs agree bit for bit.

How many threads a reduction is split across changes how its float sums round: a greedy answer
can flip on a near-tie, an image can differ in its last bits. torch's intra-op count is
per-thread state (a new thread starts from whatever the process had when it first touched
torch), and OpenMP/MKL may pick by load. So the count is decided once per process — the
`threads:` config setting, else the physical cores this process may run on (its affinity),
never the load — and set (`pin`) on the thread that runs each job, right before the work.
Results record it in `data["threads"]` and run manifests in `environment.threads`.
"""

from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger(__name__)

_decided: int | None = None  # the process default, decided once (tests may set it)
_lock = threading.Lock()
_deterministic = False


def _physical_cores(cpus: set[int]) -> int:
    """Physical cores among the logical `cpus` (SMT siblings counted once), from sysfs;
    the logical count where the topology cannot be read."""
    cores = set()
    for cpu in cpus:
        base = f"/sys/devices/system/cpu/cpu{cpu}/topology"
        try:
            with open(f"{base}/physical_package_id") as pkg, open(f"{base}/core_id") as core:
                cores.add((pkg.read().strip(), core.read().strip()))
        except OSError:
            return len(cpus)
    return len(cores) or len(cpus)


def process_default() -> int:
    """The thread count for this process when the config names none: decided on first use
    from the CPUs this process may use, then kept (never re-read from the load)."""
    global _decided
    with _lock:
        if _decided is None:
            try:
                cpus = set(os.sched_getaffinity(0))
            except (AttributeError, OSError):  # not on Linux
                cpus = set(range(os.cpu_count() or 1))
            _decided = max(1, _physical_cores(cpus))
        return _decided


def configured(config) -> int:
    """The intra-op thread count for jobs under `config` (None: the process default)."""
    return int(config.threads) if getattr(config, "threads", None) else process_default()


def pin(config) -> int:
    """Set the calling thread's intra-op count to the configured one (cheap when it already is),
    ask torch for deterministic algorithms where it has them (warnings, never errors), and
    return the count. Imports torch: call it only where a job is about to use it."""
    import torch

    global _deterministic
    n = configured(config)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    if not _deterministic:
        _deterministic = True
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS, when CUDA is used
        if not torch.are_deterministic_algorithms_enabled():
            torch.use_deterministic_algorithms(True, warn_only=True)
    return n
