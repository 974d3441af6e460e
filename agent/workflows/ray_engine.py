"""A batch on Ray: the same workflow, items and summary as the in-process batch, run by Ray Data.

    files ──> ray.data.from_items ──> map_batches(WorkflowActor, actor pool) ──> rows ──> BatchItems
                (file, path)            one visionloop context (config,                ──> BatchOutcome
                                        registry, ModelCache) per actor                    (batch.py)

The driver (this module) decides what runs (the files not already done, `resume.py`), joins
or starts Ray, hands the items to an actor pool (`ray_worker.WorkflowActor`, which runs the
ordinary workflow engine per item) and collects the rows into the same `BatchItem`s and
`BatchOutcome` as `run_batch`, in the order of the files. The progress bar is the batch's own
(items settled, failed, per second, time left), over the rows as they arrive; Ray Data's own
bars and INFO logs are turned off unless `-v`.

Without an address a local Ray is started on this machine (loopback only) and shut down at the
end; an address ("auto", "ray://HOST:10001") joins a cluster, whose workers must have
visionloop installed and see the input files and `--out` at the same paths (a shared
filesystem; see docs/scaling.md). A process that already called `ray.init` is used as it is.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import sys
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from visionloop.errors import UsageError, VisionloopError
from visionloop.paths import resolved_path
from visionloop.workflows.batch import BatchItem, BatchOutcome, BatchProgress, not_run
from visionloop.workflows.resume import runs_since
from visionloop.workflows.validate import Workflow

INSTALL = "pip install 'visionloop[cluster]' (or pip install 'ray[data,client]')"
#: environment variables a local Ray's workers get from the driver (never tokens or keys)
FORWARDED = ("VISIONLOOP_", "HF_")
MAX_BLOCKS = 20_000  # Ray Data's bookkeeping per block: a million items go in blocks of 50
GCS_WAIT = 5.0  # seconds a bare HOST:PORT address has to answer a TCP connect
LOST = "no result from the Ray worker (it died, or its block failed); run the batch again to retry it"


def import_ray():
    """`ray` with Ray Data, or a one-line `UsageError` saying how to install it."""
    try:
        import ray
        import ray.data  # the extra's other half
    except ImportError:
        raise UsageError(f"--engine ray needs Ray Data, which is not installed: {INSTALL}") from None
    return ray


def settings(config, **flags: Any):
    """The config's `ray:` section with the command-line flags that were given laid over it."""
    given = {k: v for k, v in flags.items() if v is not None}
    return config.ray.model_copy(update=given)


def _forwarded_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if k.startswith(FORWARDED) and not any(w in k for w in ("TOKEN", "KEY", "SECRET"))}


def _check_gcs(address: str) -> None:
    """A bare HOST:PORT (a node of the cluster joining its GCS): Ray would wait for ever for a
    GCS that is not there, so a plain TCP connect, bounded, goes first."""
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=GCS_WAIT).close()
    except (OSError, ValueError) as exc:
        why = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise VisionloopError(f"--address {address}: no Ray GCS answers there ({why}); HOST:PORT joins from a node "
                              "of the cluster (its head's GCS port, e.g. 6379); from elsewhere use "
                              "ray://HOST:10001 (Ray Client)") from None


@contextlib.contextmanager
def _quiet_stderr(quiet: bool):
    """The process's stderr (fd 2, where Ray's C++ side writes) to /dev/null while Ray starts:
    with RAY_BACKEND_LOG_LEVEL set, Ray says so there in an I-line of its own."""
    if not quiet:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _connect(ray, address: str | None, verbose: bool) -> bool:
    """Join Ray (or start a local one); True when this call started it (and must shut it down)."""
    if ray.is_initialized():
        return False
    if address and address != "auto" and "://" not in address:
        _check_gcs(address)
    level = logging.INFO if verbose else logging.ERROR  # -v: Ray's own logs and warnings too
    # Ray's C++ log lines on stderr (e.g. an E-line on every actor pool, ray-project/ray#53727) only with -v
    quiet_core = not verbose and "RAY_BACKEND_LOG_LEVEL" not in os.environ
    if quiet_core:
        os.environ["RAY_BACKEND_LOG_LEVEL"] = "fatal"
    try:
        with warnings.catch_warnings(), _quiet_stderr(quiet_core):  # e.g. Ray Client's own timeout warning:
            if not verbose:                                          # the error below says it
                warnings.simplefilter("ignore")
            if address:
                ray.init(address=address, logging_level=level, log_to_driver=verbose)
            else:
                ray.init(include_dashboard=False, logging_level=level, log_to_driver=verbose,
                         _node_ip_address="127.0.0.1")
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if address:
            raise VisionloopError(f"--address: cannot reach the Ray cluster at {address}: {why}") from None
        raise VisionloopError(f"cannot start a local Ray: {why}") from None
    finally:
        if quiet_core:
            os.environ.pop("RAY_BACKEND_LOG_LEVEL", None)
    return True


def _workers(ray, s, todo: int, local: bool) -> int:
    """How many actors: the flag or config, else as many as the cluster's GPUs (or CPUs) hold;
    on a local Ray never more than it can place (a pool that cannot start would wait for ever)."""
    res = ray.cluster_resources()
    cpus, gpus = res.get("CPU", 0.0), res.get("GPU", 0.0)
    if s.gpus_per_worker > gpus and local:
        raise UsageError(f"--gpus-per-worker {s.gpus_per_worker:g}: this Ray has {gpus:g} GPUs")
    fits = int(cpus // s.cpus_per_worker)
    if s.gpus_per_worker:
        fits = min(fits, int(gpus // s.gpus_per_worker))
    if fits < 1 and local:
        raise UsageError(f"--cpus-per-worker {s.cpus_per_worker:g}: this Ray has {cpus:g} CPUs")
    wanted = s.workers or max(1, fits)
    if local:
        wanted = min(wanted, fits)
    return max(1, min(wanted, todo))


def run_batch_ray(wf: Workflow, inputs: dict[str, Any], name: str, files: list[Path], config, out_dir: Path,
                  ray_settings, progress: bool = False, on_item: Callable[[BatchItem], None] | None = None,
                  done: dict[str, BatchItem] | None = None, verbose: bool = False) -> BatchOutcome:
    """`run_batch` on Ray: each file not in `done` runs as input `name` on an actor; the outcome
    lists every file in order. `inputs` are the other inputs (image paths already absolute).
    `on_item` hears of each item as it is settled (the done ones first, the rest as they end)."""
    ray = import_ray()
    done = done or {}
    todo = [f for f in files if str(f) not in done]
    settled: dict[str, BatchItem] = {}
    stopped = False

    def settle(item: BatchItem) -> None:
        settled[str(item.file)] = item
        if on_item is not None:
            on_item(item)

    for f in files:
        if str(f) in done:
            settle(done[str(f)])
    if todo:
        s = ray_settings
        since = datetime.now(UTC).isoformat(timespec="milliseconds")  # as manifests write "started"
        started = _connect(ray, s.address, verbose)
        try:
            with BatchProgress(f"{wf.name} on Ray", len(todo), progress) as bar:
                try:
                    for item in _run_on_ray(ray, wf, inputs, name, todo, config, out_dir, s, verbose):
                        settle(item)
                        bar.advance(item)
                    for f in todo:  # a block Ray gave up on: its items are still reported
                        if str(f) not in settled:
                            settle(BatchItem(str(f), "failed", error=LOST, workflow=wf.name))
                except KeyboardInterrupt:  # the items in flight die with the actors
                    stopped = True
        finally:
            if started:
                ray.shutdown()
        if stopped:  # items that ended on the actors but never reached here: their run folders say how
            left = {str(f): str(resolved_path(f)) for f in todo if str(f) not in settled}
            found = runs_since(wf, inputs, name, left, out_dir, since, mark=started)
            for f in left:
                settle(found.get(f) or not_run(wf, f))
    return BatchOutcome(wf.name, [settled[str(f)] for f in files], stopped=stopped)


def _run_on_ray(ray, wf, inputs, name, todo, config, out_dir, s, verbose):
    """The rows of the Ray Data pipeline as `BatchItem`s, as they arrive."""
    from ray.data import ActorPoolStrategy, DataContext
    from visionloop.workflows.ray_worker import WorkflowActor, item_from_row

    if not verbose:
        logging.getLogger("ray.data").setLevel(logging.ERROR)
    data_ctx = DataContext.get_current()
    data_ctx.enable_progress_bars = False  # the batch's own bar, over the rows (and no bars under --json)
    data_ctx.max_errored_blocks = -1  # an actor that dies loses its items (reported), not the batch
    data_ctx.execution_options.preserve_order = False
    # threads: the config's, else the CPUs each actor has (not the node's cores: many actors share one node)
    threads = config.threads or max(1, int(s.cpus_per_worker))
    worker_config = config.model_copy(update={"threads": threads})
    local = not s.address
    workers = _workers(ray, s, len(todo), local)
    remote_args: dict[str, Any] = {"num_cpus": s.cpus_per_worker}
    if s.gpus_per_worker:
        remote_args["num_gpus"] = s.gpus_per_worker
    if local:
        remote_args["runtime_env"] = {"env_vars": _forwarded_env()}
    rows = [{"file": str(f), "path": str(resolved_path(f))} for f in todo]
    # one block per batch (items spread evenly over the actors), at most MAX_BLOCKS of them
    ds = ray.data.from_items(rows, override_num_blocks=min(math.ceil(len(rows) / s.batch_size), MAX_BLOCKS))
    ds = ds.map_batches(WorkflowActor, fn_constructor_args=(worker_config, wf, inputs, name, str(resolved_path(out_dir))),
                        batch_size=s.batch_size, compute=ActorPoolStrategy(size=workers), batch_format="numpy",
                        **remote_args)
    try:
        for row in ds.iter_rows():
            yield item_from_row(str(row["item"]))
    except Exception as exc:  # e.g. every actor failed to start (a plugin path missing there); -v: the traceback
        last = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise VisionloopError(f"Ray: the batch stopped: {last}") from exc

