"""benchmarks/full_size.py on a CUDA GPU, plus what only a GPU has: `compile` and `channels_last`
for the UNet, and caption throughput by batch size. Same random full-size models, same checks
before each timing, and the same JSON keys as the CPU script (auto is fp16/bf16 here, and
quantize none), with these added:

  compile_vs_eager        UNet seconds per step with `compile: true` + `channels_last: true`
                          against neither (after the compile's warm-up)
  caption_batch_sizes     seconds per caption at batch sizes 1, 4, 8, 16 (fp16), answers checked
                          against batch size 1

    .venv/bin/python benchmarks/full_size_gpu.py --quick     # on a lent GPU: a few minutes
    .venv/bin/python benchmarks/full_size_gpu.py             # 512x512, 4 steps, 64 tokens
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import full_size
from full_size import say


def compile_vs_eager(config, sd, args, auto: str) -> dict:
    from visionloop.models.measure_sd import diffusion_backend, measure_draw

    rows = {}
    for name, fast in (("eager", False), ("compiled", True)):
        cfg = config.model_copy(deep=True)
        spec = cfg.profiles[cfg.profile].diffusion
        spec.channels_last = fast
        backend = diffusion_backend(cfg, str(sd), auto)
        if fast:  # diffusion_backend turns compile off; compile the UNet as `compile: true` does
            backend.text2img.unet.compile()
        for _ in range(2):  # warm-up (the compile happens here)
            measure_draw(backend, steps=2, width=args.size, height=args.size)
        rows[name] = measure_draw(backend, steps=args.steps, width=args.size, height=args.size).to_dict()
        del backend
    ratio = rows["compiled"]["step_seconds"] / rows["eager"]["step_seconds"]
    say(f"compile + channels_last vs eager: {ratio:.3f}")
    return {"rows": rows, "ratio": round(ratio, 3)}


def caption_batch_sizes(llava_folder, device: str, dtype: str, tokens: int) -> dict:
    from visionloop.models.random_llava import llava_backend, pictures

    backend = llava_backend(llava_folder, device, dtype, "none")
    prompt = backend.build_prompt("Describe this image in one sentence.", 1)
    shots = pictures(16)
    reference = None
    out = {}
    for size in (1, 4, 8, 16):
        backend.generate_many([([shots[0]], prompt)], max_new_tokens=2)  # warm-up
        started = time.perf_counter()
        texts = []
        for start in range(0, 16, size):
            texts += [g.text for g in backend.generate_many([([p], prompt) for p in shots[start:start + size]],
                                                            max_new_tokens=tokens)]
        seconds = (time.perf_counter() - started) / 16
        reference = reference or texts
        out[str(size)] = {"seconds_per_caption": round(seconds, 4), "same_as_batch_1": texts == reference}
        say(f"captions at batch size {size}: {seconds:.3f} s each")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--llava-7b", action="store_true")
    ap.add_argument("--profile", default="tiny")
    ap.add_argument("--config", default=None)
    args = ap.parse_args()
    args.tiny, args.skip, args.rounds = False, [], 3
    args.size, args.steps, args.tokens = (256, 2, 16) if args.quick else (512, 4, 64)

    import torch

    if not torch.cuda.is_available():
        print("full_size_gpu.py: no CUDA device here; run benchmarks/full_size.py on a CPU", file=sys.stderr)
        return 2
    from visionloop.config import load_config
    from visionloop.models.device import dtype_name, resolve_dtype
    from visionloop.models.random_llava import random_llava_path
    from visionloop.models.random_sd import random_sd_path

    started = time.perf_counter()
    base = load_config(args.config, args.profile, device=args.device)
    sd = random_sd_path(base.cache_path)
    llava = random_llava_path(base.cache_path, "7b" if args.llava_7b else "0.5b")
    config = full_size.config_for(sd, args)
    out: dict = {"mode": "gpu-quick" if args.quick else "gpu", "device": torch.cuda.get_device_name(0),
                 "size": args.size, "steps": args.steps, "tokens": args.tokens}
    full_size.draw_section(config, sd, sd / "taesd", args, out)
    full_size.vision_section(config, llava, args, out)
    auto = dtype_name(resolve_dtype("auto", args.device, kind="diffusion"))
    out["compile_vs_eager_detail"] = compile_vs_eager(config, sd, args, auto)
    out["compile_vs_eager"] = out["compile_vs_eager_detail"]["ratio"]
    out["caption_batch_sizes"] = caption_batch_sizes(llava, args.device, dtype_name(resolve_dtype(
        "auto", args.device, kind="vision")), args.tokens)
    out["goals_met"] = {key: (out[key] <= goal if op == "<=" else out[key] >= goal)
                        for key, (op, goal) in full_size.GOALS.items() if key in out}
    out["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
