"""What does the server cost on top of the same call made in-process?

1. A `draw` through `POST /api/tools/draw?wait=true` (HTTP over loopback to uvicorn, JSON in
   and out, the job bookkeeping and its events) against the same call made in-process through
   the loop (`Loop.call`, as the CLI makes it), alternating, on the same loaded models. Both
   paths record the call in the history, as both do in use. Goal: ratio <= 1.05 on the tiny
   model at 4 steps.
2. Requests per second for `GET /api/runs` (the first page, 50 runs) with 1,000 workflow runs in
   the output folder (copies of a real run's folder, each with its manifest and picture), and
   the first request, which reads every manifest.

    python benchmarks/serve_overhead.py [--profile tiny] [--rounds 30] [--runs 1000] [--seconds 5] [--threads 1]

`--threads` sets the CPU threads each job runs with (default 1: the tiny models run fastest and
steadiest on one thread, most of all on a shared machine; 0 keeps the config's).
"""

from __future__ import annotations

import json
import shutil
import statistics
import time
from pathlib import Path

from _common import alternate, parser, report, setup

ARGS = {"prompt": "a lighthouse at dusk", "seed": 42, "steps": 4}


def main() -> None:
    ap = parser(__doc__, rounds=30)
    ap.add_argument("--runs", type=int, default=1000, help="runs in the folder for the listing benchmark")
    ap.add_argument("--seconds", type=float, default=5.0, help="how long to request GET /api/runs")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads per job (0: the config's)")
    args = ap.parse_args()

    import httpx

    from serve_helpers import live_server
    from visionloop.loop import Loop
    from visionloop.server.app import build_server
    from visionloop.tools import ToolCall

    config, registry, ctx = setup(args.config, args.profile)
    if args.threads:
        config.threads = args.threads  # ctx.config is this object: every job pins it
    work = Path(ctx.out_dir)
    loop = Loop(registry, ctx)
    server = build_server(config, registry, work / "served", loop=loop)
    try:
        with live_server(server) as url, httpx.Client(base_url=url, timeout=600) as http:
            def over_http() -> None:
                r = http.post("/api/tools/draw", params={"wait": "true"}, json=ARGS)
                assert r.status_code == 200 and r.json()["error"] is None, r.text

            def in_process() -> None:
                [result] = loop.call(ToolCall("draw", dict(ARGS)))
                assert result.ok, result.error

            for _ in range(3):  # load the model, warm both paths
                over_http()
                in_process()
            times = alternate(args.rounds, **{"HTTP POST /api/tools/draw?wait=true": over_http,
                                              "in-process Loop.call": in_process})
            print(f"profile {args.profile}, {args.rounds} rounds, threads {config.threads or 'default'}, draw {ARGS}")
            report(times, baseline="in-process Loop.call")
            listing(server, registry, loop, http, work, args.runs, args.seconds)
    finally:
        server.close()
        loop.close()


def listing(server, registry, loop, http, work: Path, count: int, seconds: float) -> None:
    """Fill a folder with `count` runs and time GET /api/runs on a server over it."""
    from visionloop.server.app import build_server
    from visionloop.workflows import load_workflow, run_workflow

    folder = work / "many"
    wf_file = work / "one.yaml"
    wf_file.write_text("name: one\nsteps:\n  - id: draw\n    tool: draw\n    with: {prompt: a boat, seed: 1}\n"
                       "outputs: {picture: '${steps.draw.image}'}\n")
    wf = load_workflow(str(wf_file), server.config, registry)
    first = loop.submit(lambda ctx: run_workflow(wf, {}, ctx, registry, folder)).result()
    assert first.ok, first.error
    manifest = json.loads(first.manifest.read_text())
    for i in range(1, count):
        copy = folder / f"{first.run_dir.name}-{i:04d}"
        shutil.copytree(first.run_dir, copy)
        data = {**manifest, "run_dir": str(copy), "started": f"2024-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}.000+00:00"}
        data["steps"] = [{**s, "images": [p.replace(str(first.run_dir), str(copy)) for p in s["images"]]}
                         for s in manifest["steps"]]
        (copy / "manifest.json").write_text(json.dumps(data))
    many = build_server(server.config, registry, folder, loop=loop)
    from serve_helpers import live_server
    import httpx

    with live_server(many) as url, httpx.Client(base_url=url, timeout=60) as client:
        started = time.perf_counter()
        r = client.get("/api/runs")
        cold = time.perf_counter() - started
        assert r.status_code == 200 and r.json()["total"] == count, r.text[:200]
        done, latencies = 0, []
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            t = time.perf_counter()
            assert client.get("/api/runs").status_code == 200
            latencies.append(time.perf_counter() - t)
            done += 1
        rate = done / sum(latencies)
        print(f"GET /api/runs with {count} runs in the folder: first request {cold * 1000:.0f} ms (reads every "
              f"manifest); then {rate:.0f} requests/s, median {statistics.median(latencies) * 1000:.1f} ms "
              f"({done} requests, one client, keep-alive)")
        r = client.get("/api/runs", params={"q": "boat", "limit": 500})
        assert r.json()["total"] == count
    many.close()


if __name__ == "__main__":
    main()
