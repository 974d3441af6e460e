"""What does running a batch on Ray cost, next to the same batch in-process?

The same 16-picture batch (caption each with LLaVA, detail short) run by the in-process engine
(`run_batch` on one loop, as `visionloop run` does) and by the Ray engine (`run_batch_ray`: Ray
Data, an actor pool, each actor building its own context and models) on a local Ray. Before
timing, both must give the same captions for every picture and the same steps' text, else
the script stops. Each run is cold: a fresh loop and model cache in-process, fresh actors on
Ray. From when each item's result reaches the caller and how long its run took inside
`run_workflow` (its manifest's `seconds`), every run splits into:

- fixed cost: time to the first result less that item's own run (in-process: almost nothing;
  on Ray: planning the dataset, scheduling, starting the actor process, building its context);
- the first run: it loads the models, and on Ray's fresh process also imports torch and
  transformers (this process imported them before the in-process runs);
- per-item overhead: the time between the first and the last result less the runs' own time,
  per item (in-process: the loop and the batch code; on Ray: also Ray Data's hand-over and the
  rows' way back). Measured with one actor: with two, results overlap and only the wall time
  and the time to the first result mean something;

plus `ray.init` of a local Ray, paid once by a command that starts one. One actor is the
like-for-like comparison (one process doing the work); 2 actors show the spread over 2 CPUs.
It prints a line per figure, then one JSON line with them all (medians over the rounds). Tiny
profile, one intra-op thread per job (so both engines compute alike), a 2-CPU Ray by default:

    python benchmarks/ray_overhead.py [--profile tiny] [--items 16] [--cpus 2] [--rounds 3]
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

from _common import EXAMPLE, parser

WORKFLOW = """
name: ray-bench
inputs:
  image: {type: image}
steps:
  - id: describe
    tool: caption
    with: {image: "${inputs.image}", detail: short}
outputs:
  caption: "${steps.describe.text}"
"""


def pictures(folder: Path, count: int) -> list[Path]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    base = Image.open(EXAMPLE).convert("RGB").resize((96, 80))
    paths = []
    for i in range(count):
        path = folder / f"p{i:02d}.png"
        base.rotate(i * 360 / count).save(path)
        paths.append(path)
    return paths


def main() -> None:
    ap = parser(__doc__, rounds=3)
    ap.add_argument("--items", type=int, default=16)
    ap.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray")
    args = ap.parse_args()

    import ray
    from visionloop.config import load_config
    from visionloop.context import Context
    from visionloop.loop import Loop, wait
    from visionloop.plugins import load_registry
    from visionloop.workflows import load_workflow, run_workflow
    from visionloop.workflows.batch import run_batch
    from visionloop.workflows.ray_engine import run_batch_ray, settings

    work = Path(tempfile.mkdtemp(prefix="vl-ray-bench-"))
    config = load_config(args.config, args.profile).model_copy(update={"threads": 1, "history": False})
    registry = load_registry(config.plugins.paths)
    (work / "bench.yaml").write_text(WORKFLOW)
    wf = load_workflow(str(work / "bench.yaml"), config, registry)
    files = pictures(work / "photos", args.items)
    counter = iter(range(10_000))

    def timed(run) -> dict:
        """Run `run(on_item)`; the run's wall time, fixed cost and per-item overhead."""
        arrivals: list[tuple[float, float]] = []  # (seconds since start, the run's own seconds)
        started = time.perf_counter()

        def on_item(item) -> None:
            own = json.loads(Path(item.manifest).read_text())["seconds"]
            arrivals.append((time.perf_counter() - started, own))

        outcome = run(on_item)
        wall = time.perf_counter() - started
        (first, first_own), last = arrivals[0], arrivals[-1][0]
        rest_own = sum(own for _, own in arrivals[1:])
        return {"outcome": outcome, "wall": wall, "fixed": first - first_own, "first_run": first_own,
                "per_item": (last - first - rest_own) / max(1, len(arrivals) - 1),
                "work": statistics.median(own for _, own in arrivals[1:] or arrivals)}

    def local(batch: list[Path]):
        def run(on_item):
            loop = Loop(registry, Context.create(config, work, progress=False))  # cold: its own model cache
            out = work / f"out-{next(counter)}"
            try:
                def run_one(inputs):
                    return wait(loop, loop.submit(lambda ctx: run_workflow(wf, inputs, ctx, registry, out)))
                return run_batch(wf, {}, "image", batch, run_one, on_item=on_item)
            finally:
                loop.close()
        return timed(run)

    def on_ray(batch: list[Path], workers: int):
        s = settings(config, workers=workers, cpus_per_worker=1.0)
        return timed(lambda on_item: run_batch_ray(wf, {}, "image", batch, config, work / f"out-{next(counter)}", s,
                                                   on_item=on_item))

    started = time.perf_counter()
    ray.init(num_cpus=args.cpus, include_dashboard=False, _node_ip_address="127.0.0.1", logging_level="ERROR",
             log_to_driver=False)
    ray_init = time.perf_counter() - started

    # Same results first: every caption and every step's text.
    a, b = local(files)["outcome"], on_ray(files, 1)["outcome"]
    assert [i.status for i in a.items] == [i.status for i in b.items] == ["ok"] * len(files), \
        [i.error for i in a.items + b.items if i.error]
    for x, y in zip(a.items, b.items):
        assert x.outputs == y.outputs, f"{x.file}: in-process {x.outputs} vs Ray {y.outputs}"
        assert [s["text"] for s in x.steps] == [s["text"] for s in y.steps]
    print(f"same results: in-process and Ray give the same {len(files)} captions "
          f"({len({i.outputs['caption'] for i in a.items})} different)")

    runs: dict[str, list[dict]] = {"in-process": [], "ray, 1 actor": [], "ray, 2 actors": []}
    for i in range(args.rounds):
        calls = [("in-process", lambda: local(files)), ("ray, 1 actor", lambda: on_ray(files, 1)),
                 ("ray, 2 actors", lambda: on_ray(files, 2))]
        for name, fn in calls if i % 2 == 0 else reversed(calls):
            runs[name].append(fn())
    ray.shutdown()

    def med(name: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[name])

    n = len(files)
    keys = ("wall", "fixed", "first_run", "per_item", "work")
    figures = {name: {key: round(med(name, key), 4) for key in (keys if "2" not in name else ("wall", "fixed"))}
               for name in runs}
    local_wall, ray_wall = figures["in-process"]["wall"], figures["ray, 1 actor"]["wall"]
    result = {"benchmark": "ray_overhead", "profile": args.profile, "items": n, "ray_cpus": args.cpus,
              "rounds": args.rounds, "ray_init_s": round(ray_init, 3),
              **{f"{name.replace(', ', '_').replace(' ', '_')}_{key}_s": value
                 for name, values in figures.items() for key, value in values.items()},
              "ratio_ray_1_actor_over_in_process": round(ray_wall / local_wall, 3),
              "ratio_with_ray_init": round((ray_wall + ray_init) / local_wall, 3),
              "ray_per_item_overhead_minus_in_process_s": round(figures["ray, 1 actor"]["per_item"]
                                                                - figures["in-process"]["per_item"], 4)}
    print(f"ray.init (local Ray, {args.cpus} CPUs): {ray_init:.2f} s, once per command that starts one")
    for name, f in figures.items():
        line = f"{name:<14} {n} items in {f['wall']:6.2f} s: to the first result {f['fixed']:5.2f} s + its run"
        if "first_run" not in f:
            print(f"{name:<14} {n} items in {f['wall']:6.2f} s; the first result after {f['fixed']:5.2f} s + its run")
            continue
        print(f"{line} {f['first_run']:5.2f} s; then per item: run {f['work'] * 1000:6.1f} ms + overhead "
              f"{f['per_item'] * 1000:5.1f} ms (medians)")
    print(f"ratio Ray (1 actor) / in-process for {n} items: {result['ratio_ray_1_actor_over_in_process']:.2f} "
          f"({result['ratio_with_ray_init']:.2f} with ray.init)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
