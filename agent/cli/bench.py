"""`visionloop bench [--random] [--quick] [--json]`: how fast this machine runs the profile's models.

For each dtype the device computes in, the drawing model's seconds per denoising step, seconds
per picture and peak memory (plus the TAESD decode where one is at hand), and the vision model's
tokens per second: numbers to pick settings from (`dtype`, `diffusion.vae`, `vision.quantize`).
`--random` measures random weights of the same architectures (SD 1.5 and a LLaVA of
llava-interleave-qwen-0.5b's shape), built once into the cache folder: no download. `--quick`
draws small pictures with 2 steps and decodes 16 tokens (a few minutes on 2 CPU cores).

`--json`: one line per measurement (`{"model", "dtype", ...}`), then the summary line.
"""

from __future__ import annotations

import sys

from visionloop.cli.jsonlines import json_command


def add_commands(sub, common) -> None:
    p = sub.add_parser("bench", parents=[common()], help="measure the models' speed on this machine",
                       description="Seconds per denoising step, tokens per second and peak memory of the "
                                   "profile's models, for each dtype this device supports. --random measures "
                                   "random weights of the real architectures (no download).")
    p.add_argument("--random", action="store_true", help="random weights of the real architectures (SD 1.5, "
                                                         "LLaVA-0.5B), built once in the cache folder")
    p.add_argument("--quick", action="store_true", help="small pictures, 2 steps, 16 tokens")
    p.set_defaults(handler=cmd_bench)


def plan(config, random: bool, quick: bool) -> dict:
    """What to measure: the drawing model (folder or id), its TAESD (or None), sizes and steps."""
    spec = config.active.diffusion
    if random:
        from visionloop.models.random_sd import random_sd_path
        from visionloop.models.loading import quiet_loading

        with quiet_loading():
            folder = random_sd_path(config.cache_path)
        model, taesd, native = str(folder), str(folder / "taesd"), 512
    else:
        model, taesd = spec.model, spec.vae or ("taesd" if spec.model == "tiny" else None)
        native = 64 if spec.model == "tiny" else 512
    size = min(native, 256) if quick else native
    return {"model": model, "taesd": taesd, "size": size, "steps": 2 if quick else 4,
            "tokens": 16 if quick else 64}


def draw_rows(config, p: dict, device: str):
    """One measurement per dtype (and one with the TAESD decode, in the auto dtype)."""
    from visionloop.models.device import dtype_name, resolve_dtype
    from visionloop.models.measure_sd import diffusion_backend, measure_draw, supported_dtypes

    auto = dtype_name(resolve_dtype("auto", device, kind="diffusion"))
    runs = [(d, None) for d in supported_dtypes(device)] + ([(auto, p["taesd"])] if p["taesd"] else [])
    for dtype, vae in runs:
        backend = diffusion_backend(config, p["model"], dtype, vae=vae)
        measure_draw(backend, steps=1, width=p["size"], height=p["size"])  # warm-up
        # the faster of two pictures: a busy machine's pauses fall in one of them, rarely both
        t = min((measure_draw(backend, steps=p["steps"], width=p["size"], height=p["size"]) for _ in range(2)),
                key=lambda timing: timing.picture_seconds)
        del backend
        yield {"model": "diffusion", "source": p["model"], "auto": dtype == auto, **t.to_dict(),
               "error": None if t.status == "ok" else f"the picture came out {t.status}"}


def vision_rows(config, p: dict, random: bool):
    """The vision model's tokens per second, through the LLaVA side's measuring function."""
    try:
        from visionloop.models.random_llava import measure_vision
    except ImportError as exc:
        yield {"model": "vision", "error": f"vision not measured: {exc}"}
        return
    for row in measure_vision(config, random=random, tokens=p["tokens"]):
        yield {"model": "vision", "status": "failed" if row.get("error") else "ok", **row, "error": row.get("error")}


def _plain(row: dict) -> str:
    if row.get("model") == "diffusion":
        vae = f", decode {row['vae']}" if row.get("vae") else ""
        return (f"draw {row['dtype']}{' (auto)' if row['auto'] else ''}{vae}: {row['step_seconds']:.2f} s/step, "
                f"{row['picture_seconds']:.1f} s per {row['width']}x{row['height']} picture ({row['steps']} steps), "
                f"decode {row['decode_seconds']:.2f} s, peak {row['peak_memory_mb']:.0f} MB")
    if row.get("error"):
        return f"{row['model']}: {row['error']}"
    return f"{row['model']} " + ", ".join(f"{k} {v}" for k, v in row.items() if k not in ("model", "error"))


@json_command("bench", fields={"device": None})
def cmd_bench(args, app, out) -> int:
    from visionloop.models.device import cpu_flags, resolve_device
    from visionloop.models.threads import pin

    config = app.config
    device = resolve_device(config.device)
    pin(config)
    p = plan(config, args.random, args.quick)
    if not app.json and not getattr(args, "quiet", False):
        flags = ", ".join(f for f in ("avx512_bf16", "amx_bf16", "avx512f", "avx2") if f in cpu_flags())
        print(f"device {device}; CPU flags {flags or 'none of note'}", file=sys.stderr)
    failed = False
    for row in [*draw_rows(config, p, device), *vision_rows(config, p, args.random)]:
        out.result(row, count="ok" if row.get("error") is None else "failed", say=False)
        if not app.json:
            print(_plain(row))
        failed |= row.get("model") == "diffusion" and row.get("error") is not None
    return out.end(1 if failed else 0, device=device)
