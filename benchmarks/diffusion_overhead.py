"""How much the draw tool costs over a raw diffusers call, and what sharing the weights saves.

1. Overhead: `draw` through `run_tool` (argument checks, record, PNG with metadata, atomic
   write) against the raw `pipe(...)` call on the same loaded pipeline, same arguments and
   seed, alternating, median of per-round ratios. Before timing, the tool's saved PNGs must
   equal the raw call's images pixel for pixel (else the script stops). With `--count N` both sides make N
   batch-of-one calls, one per seed: the call each image's record replays.
2. Memory: peak RSS of one process running draw + restyle + edit through the tools (one
   shared set of weights) against one that loads text-to-image, image-to-image and inpainting
   pipelines separately with `from_pretrained` and runs each once. Each mode runs in its own
   child process; the unique parameter bytes held are reported too (RSS of tiny models is
   mostly torch itself).

    .venv/bin/python benchmarks/diffusion_overhead.py [--profile tiny] [--rounds 20] [--count 1]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys

from _common import alternate, parser, report, setup


def _threads(args) -> None:
    """Fewer torch threads are steadier on a busy machine (0 keeps torch's default)."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)


def _param_bytes(pipes) -> int:
    """Bytes of parameters held by `pipes`, each tensor storage counted once."""
    import torch

    seen, total = set(), 0
    for pipe in pipes:
        for module in pipe.components.values():
            if isinstance(module, torch.nn.Module):
                for t in list(module.parameters()) + list(module.buffers()):
                    key = t.untyped_storage().data_ptr()
                    if key not in seen:
                        seen.add(key)
                        total += t.untyped_storage().nbytes()
    return total


def same_pixels(saved: list[str], raw_images) -> None:
    """The images the tool saved (PNG, lossless) must be the raw call's, pixel for pixel."""
    import numpy as np
    from PIL import Image

    assert len(saved) == len(raw_images), f"draw tool saved {len(saved)} images, raw pipe made {len(raw_images)}"
    for path, image in zip(saved, raw_images):
        ours, theirs = (np.asarray(im.convert("RGB"), dtype=np.int16) for im in (Image.open(path), image))
        assert ours.shape == theirs.shape, f"draw tool and raw pipe disagree: sizes {ours.shape} vs {theirs.shape}"
        diff = int(np.abs(ours - theirs).max())
        assert diff == 0, f"draw tool and raw pipe disagree: max pixel difference {diff} ({path})"
    print(f"same pixels: the draw tool's {len(saved)} saved image(s) equal the raw pipe's")


def overhead(args) -> dict:
    import torch

    from visionloop.tools import run_tool

    _threads(args)
    config, registry, ctx = setup(args.config, args.profile)
    tool = registry.tool("draw")
    sd = ctx.models.diffusion()
    spec = config.active.diffusion
    call = {"prompt": "a lighthouse on a rock, watercolour", "seed": 1, "steps": args.steps or spec.steps,
            "count": args.count}
    (first,) = run_tool(tool, call, ctx)  # warm-up, and the exact size the tool uses
    assert first.ok, first.error
    d = first.data
    pipe = sd.text2img
    pipe.scheduler = sd.scheduler(None)[0]

    def raw():  # the recorded call: one batch-of-one call per seed (what `draw --seed S` replays)
        return [pipe(prompt=d["prompt"], negative_prompt=None, num_inference_steps=d["steps"],
                     guidance_scale=d["guidance"], width=d["width"], height=d["height"],
                     generator=torch.Generator("cpu").manual_seed(seed)).images[0] for seed in d["seeds"]]

    def tool_call():
        (r,) = run_tool(tool, call, ctx)
        assert r.ok, r.error

    pipe.set_progress_bar_config(disable=True)
    same_pixels(first.images, raw())  # else the comparison would be meaningless
    times = alternate(args.rounds, **{"draw tool": tool_call, "raw pipe": raw})
    medians = report(times, baseline="raw pipe")
    tool_t, raw_t = medians["draw tool"], medians["raw pipe"]
    ratio = statistics.median(a / b for a, b in zip(times["draw tool"], times["raw pipe"]))
    return {"size": f"{d['width']}x{d['height']}", "steps": d["steps"], "count": args.count, "rounds": args.rounds,
            "tool_median_s": round(tool_t, 4), "raw_median_s": round(raw_t, 4), "median_ratio": round(ratio, 3),
            "median_overhead_ms": round((tool_t - raw_t) * 1000, 2)}


def memory_child(args) -> dict:
    """Runs in a child process: one mode, then report peak RSS."""
    import torch
    from PIL import Image

    _threads(args)
    config, registry, ctx = setup(args.config, args.profile)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    steps = args.steps or config.active.diffusion.steps
    image = args.image
    if args.mode == "shared":
        from visionloop.tools import run_tool

        for name, call in (("draw", {"prompt": "a cat"}),
                           ("restyle", {"image": image, "prompt": "a cat", "style": "ink"}),
                           ("edit", {"image": image, "prompt": "a cat", "box": "0,0,64,64"})):
            (r,) = run_tool(registry.tool(name), {**call, "seed": 1, "steps": steps}, ctx)
            assert r.ok, r.error
        sd = ctx.models.diffusion()
        pipes = [sd.text2img, sd.img2img, sd.inpaint]
    else:
        from diffusers import AutoPipelineForImage2Image, AutoPipelineForInpainting, AutoPipelineForText2Image

        cache = ctx.models  # only for where the weights are and the dtype/device; loads nothing
        source = cache.resolve(config.active.diffusion.model, "sd")
        kw = {"use_safetensors": True, "local_files_only": True, "torch_dtype": cache.dtype}
        pipes = [cls.from_pretrained(source, **kw).to(cache.device)
                 for cls in (AutoPipelineForText2Image, AutoPipelineForImage2Image, AutoPipelineForInpainting)]
        size = config.active.diffusion.width or 512
        img = Image.open(image).convert("RGB").resize((size, size))
        mask = Image.new("L", (size, size), 0)
        mask.paste(255, (0, 0, size // 2, size // 2))
        g = lambda: torch.Generator("cpu").manual_seed(1)  # noqa: E731
        pipes[0]("a cat", num_inference_steps=steps, width=size, height=size, generator=g())
        pipes[1]("a cat, ink", image=img, strength=0.6, num_inference_steps=steps, generator=g())
        pipes[2]("a cat", image=img, mask_image=mask, num_inference_steps=steps, generator=g())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"mode": args.mode, "peak_rss_mb": round(peak / 1024, 1), "baseline_rss_mb": round(baseline / 1024, 1),
            "param_mb": round(_param_bytes(pipes) / 2**20, 2)}


def memory(args) -> dict:
    results = {}
    for mode in ("shared", "separate"):
        cmd = [sys.executable, __file__, "--memory-child", mode, "--profile", args.profile,
               "--threads", str(args.threads), "--image", args.image]
        if args.config:
            cmd += ["--config", args.config]
        if args.steps:
            cmd += ["--steps", str(args.steps)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        if proc.returncode:
            raise SystemExit(f"memory child {mode} failed:\n{proc.stderr[-2000:]}")
        results[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
    s, p = results["shared"], results["separate"]
    results["peak_rss_ratio_shared_vs_separate"] = round(s["peak_rss_mb"] / p["peak_rss_mb"], 3)
    results["param_ratio_shared_vs_separate"] = round(s["param_mb"] / p["param_mb"], 3)
    # growth over the child's RSS after imports, before any weights: what the weights cost
    grow_s, grow_p = s["peak_rss_mb"] - s["baseline_rss_mb"], p["peak_rss_mb"] - p["baseline_rss_mb"]
    results["peak_growth_mb"] = {"shared": round(grow_s, 1), "separate": round(grow_p, 1)}
    if grow_p > 0:
        results["peak_growth_ratio_shared_vs_separate"] = round(grow_s / grow_p, 3)
    return results


def main() -> None:
    ap = parser(__doc__, rounds=20)
    ap.add_argument("--steps", type=int, default=None, help="denoising steps (default: the profile's)")
    ap.add_argument("--count", type=int, default=1, help="images per draw call (overhead part only)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (1 is steadier on a busy machine; 0 = torch's default)")
    ap.add_argument("--memory-child", dest="mode", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--skip-memory", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before any hub import; the memory children inherit it
    if args.mode:
        print(json.dumps(memory_child(args)))
        return
    results = {"overhead": overhead(args)}
    if not args.skip_memory:
        results["memory"] = memory(args)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
