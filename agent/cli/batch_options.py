"""`visionloop run`'s options for a batch (an image input given a folder or glob): which engine
runs it (in this process, or on Ray: `visionloop.workflows.ray_engine`), the Ray settings that
override the config's `ray:` section, `--rerun`, and the plain lines a batch ends with."""

from __future__ import annotations

import argparse

from visionloop.config_schema import ray_address_problem
from visionloop.errors import UsageError


def _number(kind, least: float, strict: bool):
    def parse(text: str):
        value = kind(text)  # ValueError: argparse says "invalid parse value"
        if value < least or (strict and value == least):
            raise argparse.ArgumentTypeError(f"must be {'above' if strict else 'at least'} {least}, got {text}")
        return value
    parse.__name__ = kind.__name__
    return parse


#: the Ray flags, by their `ray:` config key
RAY_FLAGS = {"address": "--address", "workers": "--workers", "gpus_per_worker": "--gpus-per-worker",
             "cpus_per_worker": "--cpus-per-worker", "batch_size": "--batch-size"}


def add_batch_arguments(p) -> None:
    g = p.add_argument_group("a batch (an image input given a folder or glob)")
    g.add_argument("--rerun", action="store_true",
                   help="run every file again (default: skip files whose earlier run in --out finished ok)")
    g.add_argument("--engine", choices=("local", "ray"), default=None,
                   help="local: in this process; ray: on Ray Data actors, each with its own models "
                        "(pip install 'visionloop[cluster]'); default: the config's engine")
    g.add_argument("--address", metavar="ADDR", help="join this Ray cluster (auto, ray://HOST:10001); "
                                                       "default: start a local Ray")
    g.add_argument("--workers", type=_number(int, 1, False), metavar="N", help="Ray actors (default: as many as fit)")
    g.add_argument("--gpus-per-worker", type=_number(float, 0, False), metavar="N", help="GPUs per actor (e.g. 1)")
    g.add_argument("--cpus-per-worker", type=_number(float, 0, True), metavar="N", help="CPUs per actor (default 1)")
    g.add_argument("--batch-size", type=_number(int, 1, False), metavar="N", help="items per call of an actor")


def batch_engine(args, config) -> str:
    """The engine asked for; a Ray flag without Ray is a mistake, not silently ignored."""
    engine = getattr(args, "engine", None) or config.engine
    given = [flag for key, flag in RAY_FLAGS.items() if getattr(args, key, None) is not None]
    if given and engine != "ray":
        raise UsageError(f"{given[0]} is a Ray setting: add --engine ray (or engine: ray in the config)")
    address = getattr(args, "address", None)
    problem = None if address is None else ray_address_problem(address)
    if problem:  # e.g. http://x: Ray would blame RAY_ADDRESS; a bare HOST:PORT is checked on connecting
        raise UsageError(f"--address {problem}" if not address.strip() else f"--address {address}: {problem}")
    return engine



def print_batch(result) -> None:
    """A batch, plain: a line per file, then the counts."""
    for item in result.items:
        if item.status == "ok":
            print(f"ok      {item.file} -> {item.run_dir}")
        elif item.resumed:
            print(f"skipped {item.file} -> {item.run_dir} (finished ok earlier; --rerun runs it again)")
        else:
            print(f"{item.status:<7} {item.file}: {item.error}")
    s = result.summary
    resumed = sum(1 for i in result.items if i.resumed)
    earlier = f", {resumed} skipped (finished earlier)" if resumed else ""
    skipped = f", {s['not_run']} not run (interrupted)" if result.interrupted else ""
    failed = s["failed"] + s["interrupted"]
    print(f"{result.workflow}: {s['total']} items, {s['ok']} ok, {failed} failed{earlier}{skipped}")
