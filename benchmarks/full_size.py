"""Real-size speed on this machine: random weights of the real architectures, our tools against
fp32 and against raw library calls, side by side in one run.

Models (built once into the cache folder from configs written in agent/models/random_*.py, no
download): Stable Diffusion 1.5 (UNet 860M, VAE, CLIP-L text encoder, TAESD) and a LLaVA of
llava-interleave-qwen-0.5b's shape (CLIP ViT-L/14-336 vision tower, Qwen2-0.5B-sized language
model); `--llava-7b` uses LLaVA-1.5-7B's shape instead (14 GB in bf16 on disk, 28 GB to run fp32).

Ratios (the last line printed is one JSON object with them and every measurement):
  draw_auto_vs_fp32      UNet seconds per step, dtype auto against float32            goal <= 0.30
  decode_auto_vs_fp32    LLaVA decode tokens/s, auto (int8 on a CPU) against fp32     goal >= 3.0
  followup_vs_first      a second question about the same picture against the first   goal <= 0.6
  batch_caption_speedup  8 captions in one batched call against 8 single calls        goal >= 1.5
  taesd_vs_vae           TAESD decode against the full VAE decode                     goal <= 0.1
  draw_vs_raw            our draw tool against raw diffusers, same dtype and steps    goal <= 1.03
  picture_512_seconds    one 512x512 picture, fastest settings (lcm, 4 steps, guidance 1,
                         auto dtype, TAESD), text encoding included, load excluded    goal <= 15
Before a ratio is timed, both sides are checked: same pixels for draw_vs_raw, same answers for
the batch, the cache actually reused for the follow-up, finite non-black pictures for dtypes.

    .venv/bin/python benchmarks/full_size.py --quick      # 256x256, 2 steps, 16 tokens
    .venv/bin/python benchmarks/full_size.py              # 512x512, 4 steps, 64 tokens
    .venv/bin/python benchmarks/full_size.py --tiny       # the wiring only, on the tiny models
On a GPU, benchmarks/full_size_gpu.py prints the same JSON keys.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import _common  # puts the project on sys.path; alternate() times both sides

GOALS = {"draw_auto_vs_fp32": ("<=", 0.30), "decode_auto_vs_fp32": (">=", 3.0), "followup_vs_first": ("<=", 0.6),
         "batch_caption_speedup": (">=", 1.5), "taesd_vs_vae": ("<=", 0.1), "draw_vs_raw": ("<=", 1.03),
         "picture_512_seconds": ("<=", 15.0)}


def say(*parts) -> None:
    print(*parts, file=sys.stderr, flush=True)


def config_for(sd_folder, args):
    from visionloop.config import load_config

    config = load_config(args.config, args.profile, device=args.device)
    config = config.model_copy(deep=True)
    config.history = False
    spec = config.profiles[config.profile].diffusion
    spec.model, spec.inpaint_model, spec.loras, spec.safety_checker = str(sd_folder), None, [], False
    return config


def finite_picture(gen) -> None:
    import numpy as np

    for image in gen.images:
        a = np.asarray(image, dtype=np.float32)
        assert np.isfinite(a).all() and a.max() > 0, "a picture came out NaN or black"


def draw_section(config, sd_folder, taesd, args, out: dict) -> None:
    from visionloop.models.device import dtype_name, resolve_device, resolve_dtype
    from visionloop.models.measure_sd import diffusion_backend, measure_draw

    device = resolve_device(config.device)
    auto = dtype_name(resolve_dtype("auto", device, kind="diffusion"))
    size, steps = args.size, args.steps
    rows = {}
    for dtype in dict.fromkeys(["float32", auto]):
        backend = diffusion_backend(config, str(sd_folder), dtype)
        measure_draw(backend, steps=1, width=size, height=size)  # warm-up
        rows[dtype] = measure_draw(backend, steps=steps, width=size, height=size).to_dict()
        assert rows[dtype]["status"] == "ok", f"{dtype}: the picture came out {rows[dtype]['status']}"
        say(f"draw {dtype}: {rows[dtype]['step_seconds']:.2f} s/step at {size}x{size}")
        if dtype == auto:
            out["draw_vs_raw_detail"] = tool_vs_raw(config, backend, args)
            out["taesd_vs_vae_detail"] = taesd_vs_vae(backend, taesd, args)
        del backend
    out["draw_rows"] = rows
    out["auto_dtype"] = auto
    out["draw_auto_vs_fp32"] = round(rows[auto]["step_seconds"] / rows["float32"]["step_seconds"], 3)
    out["draw_vs_raw"] = out["draw_vs_raw_detail"]["ratio"]
    out["taesd_vs_vae"] = out["taesd_vs_vae_detail"]["ratio"]
    # the fastest picture the tool offers: few-step scheduler, auto dtype, TAESD, 512x512
    fast = diffusion_backend(config, str(sd_folder), auto, vae=str(taesd))
    side = 64 if args.tiny else 512
    measure_draw(fast, steps=1, width=side, height=side, scheduler="lcm", guidance=1.0)  # warm-up
    t = measure_draw(fast, steps=4, width=side, height=side, scheduler="lcm", guidance=1.0).to_dict()
    assert t["status"] == "ok"
    out["picture_512_detail"] = t
    out["picture_512_seconds"] = round(t["picture_seconds"], 2)
    say(f"fastest {side}x{side} picture: {t['picture_seconds']:.1f} s (lcm, 4 steps, guidance 1, {auto}, taesd)")


def tool_vs_raw(config, backend, args) -> dict:
    """Our `draw` (checks, record, PNG) against the raw pipeline call, same pixels first."""
    import numpy as np
    import torch
    from PIL import Image

    from visionloop.context import Context
    from visionloop.plugins import load_registry
    from visionloop.tools import run_tool

    registry = load_registry(config.plugins.paths)
    ctx = Context.create(config, _common.tempfile.mkdtemp(prefix="vl-full-"))
    ctx.models._models["diffusion"] = backend  # the loaded backend, shared
    args_ = {"prompt": "a lighthouse on a cliff at sunset", "seed": 7, "steps": args.steps,
             "width": args.size, "height": args.size}
    pipe = backend.text2img

    def ours():
        (r,) = run_tool(registry.tool("draw"), dict(args_), ctx)
        assert r.ok, r.error
        return r

    first = ours()
    data = first.data

    def raw():
        pipe.scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config, **data["scheduler_options"])
        return pipe(prompt=data["prompt"], num_inference_steps=data["steps"], guidance_scale=data["guidance"],
                    width=data["width"], height=data["height"], output_type="np",
                    generator=torch.Generator("cpu").manual_seed(data["seed"])).images[0]

    mine = np.asarray(Image.open(first.images[0]).convert("RGB"))
    theirs = (raw() * 255).round().clip(0, 255).astype("uint8")
    assert (mine == theirs).all(), "the draw tool and the raw pipeline call disagree"
    times = _common.alternate(max(args.rounds, 4), ours=ours, raw=raw)  # a few % apart: 4 rounds at least
    ratio = statistics.median(times["ours"]) / statistics.median(times["raw"])
    say(f"draw tool vs raw diffusers ({data['dtype']}): {ratio:.3f}")
    return {"ours_seconds": statistics.median(times["ours"]), "raw_seconds": statistics.median(times["raw"]),
            "dtype": data["dtype"], "ratio": round(ratio, 3)}


def taesd_vs_vae(backend, taesd_folder, args) -> dict:
    """Decoding the same latents with the full VAE and with TAESD (both in the backend's dtype)."""
    import torch
    from diffusers import AutoencoderTiny

    side = (64 if args.tiny else 512) // 8
    latents = torch.randn(1, 4, side, side, generator=torch.Generator().manual_seed(0))
    latents = latents.to(backend.device, backend.dtype)
    vae = backend.text2img.vae
    tiny = AutoencoderTiny.from_pretrained(str(taesd_folder), torch_dtype=backend.dtype).to(backend.device)
    with torch.inference_mode():
        def full():
            return vae.decode(latents).sample.cpu()  # .cpu(): a GPU finishes before the clock stops

        def fast():
            return tiny.decode(latents).sample.cpu()

        a, b = full(), fast()
        assert a.shape == b.shape and torch.isfinite(b).all(), (a.shape, b.shape)
        times = _common.alternate(args.rounds, vae=full, taesd=fast)
    ratio = statistics.median(times["taesd"]) / statistics.median(times["vae"])
    say(f"decode {side * 8}x{side * 8}: vae {statistics.median(times['vae']):.2f} s, "
        f"taesd {statistics.median(times['taesd']):.3f} s")
    return {"vae_seconds": statistics.median(times["vae"]), "taesd_seconds": statistics.median(times["taesd"]),
            "ratio": round(ratio, 3)}


def vision_section(config, llava_folder, args, out: dict) -> None:
    from visionloop.models.device import dtype_name, resolve_device, resolve_dtype
    from visionloop.models.llava_speed import resolve_quantize
    from visionloop.models.random_llava import batch_vs_single, decode_rate, followup, llava_backend, pictures

    device = resolve_device(config.device)
    picture = pictures(1)[0]
    quantize = resolve_quantize("auto", "auto", device)
    auto_dtype = dtype_name(resolve_dtype("auto", device, kind="vision"))  # fp32 on a CPU (int8 instead)
    full = llava_backend(llava_folder, device, "float32", "none")
    decode_rate(full, picture, 2)  # warm-up
    fp32 = decode_rate(full, picture, args.tokens)
    say(f"LLaVA fp32: {fp32['tokens_per_second']} tokens/s")
    out["batch_detail"] = batch = batch_vs_single(full, 8, args.tokens)
    assert batch["identical"], "batched and single captions disagree"
    out["batch_caption_speedup"] = batch["batch_caption_speedup"]
    say(f"8 captions batched vs single (fp32): {batch['batch_caption_speedup']}x")
    del full
    auto = llava_backend(llava_folder, device, auto_dtype, quantize)
    decode_rate(auto, picture, 2)
    fast = decode_rate(auto, picture, args.tokens)
    say(f"LLaVA auto ({auto_dtype}, quantize {quantize}): {fast['tokens_per_second']} tokens/s")
    out["decode_rows"] = {"float32": fp32, "auto": {**fast, "dtype": auto_dtype, "quantize": quantize}}
    out["decode_auto_vs_fp32"] = round(fast["tokens_per_second"] / fp32["tokens_per_second"], 3)
    follow = followup(auto, picture, args.tokens)
    assert follow["reused"], "the follow-up did not reuse the picture's encoding"
    out["followup_detail"] = follow
    out["followup_vs_first"] = follow["followup_vs_first"]
    say(f"follow-up vs first question: {follow['followup_vs_first']}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="256x256, 2 steps, 16 tokens (under 10 minutes)")
    ap.add_argument("--tiny", action="store_true", help="the tiny models: checks the wiring in seconds")
    ap.add_argument("--llava-7b", action="store_true", help="LLaVA-1.5-7B's shape instead of the 0.5B one")
    ap.add_argument("--skip", choices=["draw", "vision"], action="append", default=[])
    ap.add_argument("--profile", default="tiny")
    ap.add_argument("--config", default=None)
    ap.add_argument("--device", default=None)
    ap.add_argument("--rounds", type=int, default=None)
    args = ap.parse_args()
    args.size, args.steps, args.tokens = (64, 2, 8) if args.tiny else (256, 2, 16) if args.quick else (512, 4, 64)
    args.rounds = args.rounds or (2 if (args.quick or args.tiny) else 3)

    from visionloop.config import load_config
    from visionloop.models.cache import ModelCache
    from visionloop.models.device import cpu_flags
    from visionloop.models.random_llava import random_llava_path
    from visionloop.models.random_sd import random_sd_path
    from visionloop.models.taesd import tiny_taesd_path
    from visionloop.models.threads import pin

    base = load_config(args.config, args.profile, device=args.device)
    pin(base)
    started = time.perf_counter()
    if args.tiny:
        models = ModelCache(base)
        sd, llava = models.resolve("tiny", "sd"), models.resolve("tiny", "llava")
        taesd = tiny_taesd_path(base.cache_path)
    else:
        say("building or finding the random full-size models in", base.cache_path / "random")
        sd = random_sd_path(base.cache_path)
        taesd = sd / "taesd"
        llava = random_llava_path(base.cache_path, "7b" if args.llava_7b else "0.5b")
    out: dict = {"mode": "tiny" if args.tiny else "quick" if args.quick else "full", "size": args.size,
                 "steps": args.steps, "tokens": args.tokens,
                 "cpu_flags": sorted(f for f in cpu_flags() if "bf16" in f or "amx" in f or "avx512" in f)}
    config = config_for(sd, args)
    if "draw" not in args.skip:
        draw_section(config, sd, taesd, args, out)
    if "vision" not in args.skip:
        vision_section(config, llava, args, out)
    out["goals_met"] = {key: (out[key] <= goal if op == "<=" else out[key] >= goal)
                        for key, (op, goal) in GOALS.items() if key in out}
    out["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
