"""How much does the tool path cost on top of a raw transformers `generate`?

Both sides use the same loaded weights (the tool's ModelCache hands out the model; the raw side
calls `processor(...)` + `model.generate(...)` + `decode` on it directly), with the same image,
prompt and settings. Calls alternate so that machine noise hits both equally; the script prints
the median of each and their ratio. Runs on the tiny profile by default (no download):

    python benchmarks/llava_overhead.py [--profile tiny] [--rounds 30] [--image PATH]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--config", default=None)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--image", default=str(ROOT / "examples" / "lighthouse.png"))
    args = parser.parse_args()

    import torch
    from PIL import Image

    from agent.config import load_config
    from agent.context import Context
    from agent.loop import Loop
    from agent.plugins import load_registry
    from agent.tools import ToolCall

    config = load_config(args.config, args.profile)
    loop = Loop(load_registry(), Context.create(config, tempfile.mkdtemp()))
    call = ToolCall("caption", {"image": [args.image]})
    (first,) = loop.call(call)  # loads the model, warms up
    assert first.error is None, first.error
    llava = loop.ctx.models.llava()
    prompt, max_new = first.data["prompt"], first.data["max_new_tokens"]

    def raw() -> str:
        image = Image.open(args.image).convert("RGB")
        inputs = llava.processor(images=[image], text=prompt, return_tensors="pt").to(llava.device)
        with torch.inference_mode():
            out = llava.model.generate(**inputs, max_new_tokens=max_new, do_sample=False)
        return llava.processor.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()

    assert raw() == first.text, "the tool and raw generate disagree"
    tool_times, raw_times = [], []
    for _ in range(args.rounds):
        t = time.perf_counter()
        loop.call(call)
        tool_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        raw()
        raw_times.append(time.perf_counter() - t)
    loop.close()
    tool_med, raw_med = statistics.median(tool_times), statistics.median(raw_times)
    print(f"model: {first.data['model']} on {llava.device}, {max_new} new tokens, {args.rounds} alternating rounds")
    print(f"raw generate  median {raw_med * 1000:8.2f} ms")
    print(f"caption tool  median {tool_med * 1000:8.2f} ms")
    print(f"ratio tool/raw: {tool_med / raw_med:.3f}")


if __name__ == "__main__":
    main()
