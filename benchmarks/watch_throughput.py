"""Watcher overhead on the tiny profile: settle-to-start latency and burst throughput.

    .venv/bin/python benchmarks/watch_throughput.py [--files 60] [--settle 0.1] [--cap 600]

Reports, in the same run:
  raw      median seconds of one `run_workflow` call on one image (the engine, no watcher),
           taken over calls that alternate with the watcher rounds;
  watcher  files/second for a burst of N files dropped into a watched folder (from the first
           write until the last file is recorded done), and seconds per file;
  ratio    watcher seconds per file / raw seconds per file (1.0 = no overhead);
  latency  median seconds from a file settling (last change + settle) to its job starting,
           for files dropped one at a time into an idle watcher (and, separately, inside the
           burst, where it is mostly time spent waiting behind the files before it).

A round that does not finish within `--cap` seconds, or in which a file fails, stops the
benchmark with one line saying so and exit 1: no rate is reported from an unfinished round.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import setup  # first: it puts tests/ on sys.path for watch_helpers

from watch_helpers import CAPTION_WORKFLOW, make_rule  # tests/watch_helpers.py: the tests' workflow and rule


class CapHit(Exception):
    """A round did not finish: the cap hit, or a file failed. No rate is computed from it."""


def wait_done(announced: list[str], n: int, deadline: float, what: str) -> None:
    """Wait until `n` files are announced done; raise `CapHit` at the deadline or on a failure."""
    while True:
        failed = [line for line in announced if ": failed (" in line or ": not processed" in line]
        if failed:
            raise CapHit(f"{what}: a file did not get done ({failed[0]}); no rate reported")
        done = sum(1 for line in announced if ": done -> " in line)
        if done >= n:
            return
        if time.perf_counter() >= deadline:
            raise CapHit(f"{what}: the cap hit with {done} of {n} files done; no rate reported "
                         f"(raise --cap, or use fewer --files)")
        time.sleep(0.005)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=60)
    ap.add_argument("--settle", type=float, default=0.1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cap", type=float, default=600.0, help="seconds a round may take before the benchmark stops")
    args = ap.parse_args()
    try:
        return run(args)
    except CapHit as exc:
        print(f"watch_throughput: stopped: {exc}", file=sys.stderr)
        return 1


def run(args) -> int:
    from PIL import Image

    from visionloop.loop import Loop
    from visionloop.workflows import load_workflow, run_workflow

    root = Path(tempfile.mkdtemp(prefix="vl-watch-bench-"))
    os.environ["VISIONLOOP_STATE_DIR"] = str(root / "state")
    config, registry, ctx = setup(None, "tiny", root / "ctx-out")
    loop = Loop(registry, ctx)
    (root / "wf.yaml").write_text(CAPTION_WORKFLOW)
    wf = load_workflow(str(root / "wf.yaml"), config, registry)
    sample = root / "sample.png"
    Image.new("RGB", (24, 24), (10, 20, 30)).save(sample)
    loop.submit(lambda ctx: run_workflow(wf, {"image": str(sample)}, ctx, registry, root / "warm")).result()

    raw, rates, per_file, latencies, idle = [], [], [], [], []
    try:
        for rnd in range(args.rounds):
            rounds(args, rnd, root, loop, registry, config, wf, sample, raw, rates, per_file, latencies, idle)
    finally:
        loop.close()
        shutil.rmtree(root, ignore_errors=True)

    raw_med = statistics.median(raw)
    print(f"files per burst: {args.files}, settle {args.settle} s, rounds {args.rounds}")
    print(f"raw run_workflow: {raw_med * 1000:.1f} ms/file (median of {len(raw)})")
    print(f"watcher burst:    {statistics.median(rates):.1f} files/s ({statistics.median(per_file) * 1000:.1f} ms/file, "
          f"includes the {args.settle} s settle once)")
    print(f"ratio watcher/raw per file: {statistics.median(per_file) / raw_med:.2f}")
    print(f"latency settled -> job start, idle watcher: median {statistics.median(idle) * 1000:.1f} ms, "
          f"max {max(idle) * 1000:.1f} ms (n={len(idle)})")
    print(f"latency settled -> job start, inside the burst (queueing): median "
          f"{statistics.median(latencies) * 1000:.1f} ms (n={len(latencies)})")
    return 0



def rounds(args, rnd, root, loop, registry, config, wf, sample, raw, rates, per_file, latencies, idle) -> None:
    """One round: raw engine calls, a burst into a fresh watcher, then single files into it idle."""
    from PIL import Image

    from visionloop.watch import Watcher
    from visionloop.workflows import run_workflow

    for _ in range(10):  # raw engine calls, alternating with the watcher rounds
        t0 = time.perf_counter()
        loop.submit(lambda ctx: run_workflow(wf, {"image": str(sample)}, ctx, registry, root / "raw")).result()
        raw.append(time.perf_counter() - t0)
    inbox = root / f"in{rnd}"
    inbox.mkdir()
    rule = make_rule(root, name=f"r{rnd}", folder=str(inbox), output=str(root / f"out{rnd}"), settle=args.settle)
    done: list[str] = []
    watcher = Watcher([rule], loop, registry, config, announce=done.append)
    watcher.start()
    try:
        t0 = time.perf_counter()
        deadline = t0 + args.cap
        for i in range(args.files):
            Image.new("RGB", (24, 24), (i % 256, rnd, 7)).save(inbox / f"f{i:04d}.png")
        wait_done(done, args.files, deadline, f"round {rnd + 1}, burst of {args.files} files, cap {args.cap:g} s")
        elapsed = time.perf_counter() - t0
        latencies.extend(watcher.latencies)
        for i in range(10):  # one file at a time into the idle watcher
            Image.new("RGB", (24, 24), (i, rnd, 200)).save(inbox / f"single{i}.png")
            wait_done(done, args.files + i + 1, deadline, f"round {rnd + 1}, single files, cap {args.cap:g} s")
        idle.extend(watcher.latencies[args.files:])
    finally:
        watcher.stop()
    rates.append(args.files / elapsed)
    per_file.append(elapsed / args.files)


if __name__ == "__main__":
    sys.exit(main())
