"""What the benchmark scripts share: the usual arguments, the loaded config/registry/context,
the raw LLaVA call they compare against, the alternating timing loop and the ratio report.

The scripts run as `python benchmarks/NAME.py` from the repository root, so this folder is
already first on sys.path and `import _common` just works. `tests/` goes on sys.path too, so a
benchmark can reuse a test helper (for example the watcher's workflow) instead of copying it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "lighthouse.png"

for _folder in (ROOT, ROOT / "tests"):  # the project (if not installed) and the test helpers
    if str(_folder) not in sys.path:
        sys.path.append(str(_folder))


def parser(doc: str, rounds: int) -> argparse.ArgumentParser:
    """The arguments every model benchmark takes; a script adds its own before parsing."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--profile", default="tiny")
    ap.add_argument("--config", default=None)
    ap.add_argument("--rounds", type=int, default=rounds)
    ap.add_argument("--image", default=str(EXAMPLE))
    return ap


def setup(config_path: str | None, profile: str, out_dir: str | Path | None = None):
    """The config, the plugin registry and a Context writing under `out_dir` (a new temporary
    folder when not given). Imports are inside so `--help` stays fast."""
    from visionloop.config import load_config
    from visionloop.context import Context
    from visionloop.plugins import load_registry

    config = load_config(config_path, profile)
    registry = load_registry(config.plugins.paths)
    ctx = Context.create(config, out_dir if out_dir is not None else tempfile.mkdtemp(prefix="vl-bench-"))
    return config, registry, ctx


def raw_generate(llava, image_path: str | Path, prompt: str, max_new_tokens: int) -> str:
    """The baseline: `processor(...)` + `model.generate(...)` + `decode` on the loaded weights,
    greedy, exactly as a plain transformers script would call them."""
    import torch
    from PIL import Image

    image = Image.open(image_path).convert("RGB")
    inputs = llava.processor(images=[image], text=prompt, return_tensors="pt").to(llava.device)
    with torch.inference_mode():
        out = llava.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    return llava.processor.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()


def checked_raw(llava, image_path: str | Path, first, who: str):
    """`raw_generate` with the prompt and token budget that the warm-up result `first` recorded,
    after checking that it gives the same text (else the comparison would be meaningless)."""
    def raw() -> str:
        return raw_generate(llava, image_path, first.data["prompt"], first.data["max_new_tokens"])

    assert raw() == first.text, f"{who} and raw generate disagree"
    return raw


def alternate(rounds: int, **calls) -> dict[str, list[float]]:
    """Seconds per call for each of `calls`, run one after another in every round, so that
    machine noise hits all of them alike. Every other round runs them in reverse order (ABBA),
    so that going first or second (caches, a neighbour's load arriving) favours none of them."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    order = list(calls.items())
    for i in range(rounds):
        for name, fn in order if i % 2 == 0 else reversed(order):
            started = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - started)
    return times


def report(times: dict[str, list[float]], baseline: str) -> dict[str, float]:
    """Print the median of each series in ms, then each one's ratio to `baseline` (the ratio of
    the medians and the median of the per-round ratios). Returns the medians."""
    medians = {name: statistics.median(series) for name, series in times.items()}
    width = max(map(len, times))
    for name, median in medians.items():
        print(f"{name:<{width}}  median {median * 1000:9.2f} ms")
    for name, series in times.items():
        if name != baseline:
            per_round = statistics.median(a / b for a, b in zip(series, times[baseline]))
            print(f"ratio {name} / {baseline}: {medians[name] / medians[baseline]:.3f} "
                  f"(median of per-round ratios {per_round:.3f})")
    return medians
