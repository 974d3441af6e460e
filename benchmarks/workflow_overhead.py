"""How much does the workflow engine cost on top of the same three calls made directly?

The workflow: caption a photo (LLaVA), draw from the caption (Stable Diffusion), caption the
drawing (LLaVA). The direct side makes the same three calls on the same loaded backends with the
raw libraries: `processor(...)` + `model.generate(...)` + `decode`, the diffusers pipeline
`pipe(...)` + `PIL.Image.save`, then `generate` again. The engine adds reference resolution,
argument checks, safe image loading, PNG metadata, the run folder, outputs.json and a manifest
written atomically after every step. Runs alternate so machine noise hits both equally; the
script prints the median of each and their ratio. Tiny profile by default (no download):

    python benchmarks/workflow_overhead.py [--profile tiny] [--rounds 15] [--image PATH]

It also times the same calls on the backends' own methods (`LlavaBackend.generate`,
`DiffusionBackend.generate`), which separates the engine's cost from the backends' own.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

WORKFLOW = """
name: bench
inputs:
  image: {type: image}
steps:
  - id: look
    tool: caption
    with: {image: "${inputs.image}"}
  - id: draw
    tool: draw
    with: {prompt: "${steps.look.text}", seed: 1}
  - id: check
    tool: caption
    with: {image: "${steps.draw.image}"}
outputs:
  picture: "${steps.draw.image}"
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--config", default=None)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--image", default=str(ROOT / "examples" / "lighthouse.png"))
    args = parser.parse_args()

    import torch
    from PIL import Image

    from agent.config import load_config
    from agent.context import Context
    from agent.plugins import load_registry
    from agent.workflows import load_workflow, run_workflow

    config = load_config(args.config, args.profile)
    registry = load_registry(config.plugins.paths)
    work = Path(tempfile.mkdtemp())
    (work / "bench.yaml").write_text(WORKFLOW)
    wf = load_workflow(str(work / "bench.yaml"), config, registry)
    ctx = Context.create(config, work)
    first = run_workflow(wf, {"image": args.image}, ctx, registry, work / "runs")  # loads models, warms up
    assert first.ok, first.error
    llava, sd = ctx.models.llava(), ctx.models.diffusion()
    look, draw, check = first.steps
    d = draw["data"]

    def raw_caption(path: str, prompt: str, max_new: int) -> str:
        image = Image.open(path).convert("RGB")
        inputs = llava.processor(images=[image], text=prompt, return_tensors="pt").to(llava.device)
        with torch.inference_mode():
            out = llava.model.generate(**inputs, max_new_tokens=max_new, do_sample=False)
        return llava.processor.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()

    pipe = sd.pipeline("text2img")

    def direct() -> None:
        text = raw_caption(args.image, look["data"]["prompt"], look["data"]["max_new_tokens"])
        with torch.inference_mode():
            picture = pipe(prompt=text, num_inference_steps=d["steps"], guidance_scale=d["guidance"],
                           width=d["width"], height=d["height"],
                           generator=torch.Generator("cpu").manual_seed(d["seed"])).images[0]
        path = work / "direct.png"
        picture.save(path)
        raw_caption(str(path), check["data"]["prompt"], check["data"]["max_new_tokens"])

    def backends() -> None:
        """The same calls on the loaded backends' own methods (no tool, no engine)."""
        picture = Image.open(args.image).convert("RGB")
        text = llava.generate([picture], look["data"]["prompt"], max_new_tokens=look["data"]["max_new_tokens"],
                              temperature=0.0, top_p=1.0).text
        gen = sd.generate("text2img", prompt=text, negative_prompt=None, steps=d["steps"], guidance=d["guidance"],
                          seeds=[d["seed"]], width=d["width"], height=d["height"])
        path = work / "backend.png"
        gen.images[0].save(path)
        llava.generate([Image.open(path).convert("RGB")], check["data"]["prompt"],
                       max_new_tokens=check["data"]["max_new_tokens"], temperature=0.0, top_p=1.0)

    engine_times, direct_times, backend_times, bookkeeping = [], [], [], []
    for _ in range(args.rounds):
        t = time.perf_counter()
        out = run_workflow(wf, {"image": args.image}, ctx, registry, work / "runs")
        engine_times.append(time.perf_counter() - t)
        assert out.ok, out.error
        bookkeeping.append(engine_times[-1] - sum(s["seconds"] for s in out.steps))  # outside the tools
        t = time.perf_counter()
        direct()
        direct_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        backends()
        backend_times.append(time.perf_counter() - t)
    e, r, b = (statistics.median(x) for x in (engine_times, direct_times, backend_times))
    ratios = [a / b for a, b in zip(engine_times, direct_times)]
    print(f"profile {args.profile}, device {llava.device}, {args.rounds} rounds, 3 steps (caption, draw, caption)")
    print(f"workflow engine      : median {e * 1000:8.1f} ms")
    print(f"backend methods      : median {b * 1000:8.1f} ms  (engine / backends: "
          f"{statistics.median(a / c for a, c in zip(engine_times, backend_times)):.3f}x)")
    print(f"raw library calls    : median {r * 1000:8.1f} ms")
    print(f"engine bookkeeping outside the tool calls (refs, run folder, manifests): "
          f"median {statistics.median(bookkeeping) * 1000:.1f} ms per run")
    print(f"engine / raw library (median of per-round ratios): {statistics.median(ratios):.3f}x; "
          f"ratio of medians: {e / r:.3f}x")


if __name__ == "__main__":
    main()
