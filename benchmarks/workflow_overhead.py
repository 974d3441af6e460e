"""How much does the workflow engine cost on top of the same three calls made directly?

The workflow: caption a photo (LLaVA), draw from the caption (Stable Diffusion), caption the
drawing (LLaVA). The direct side makes the same three calls on the same loaded backends with the
raw libraries: `processor(...)` + `model.generate(...)` + `decode`, the diffusers pipeline
`pipe(...)` + `PIL.Image.save`, then `generate` again. The engine adds reference resolution,
argument checks, safe image loading, PNG metadata, the run folder, outputs.json and a manifest
written atomically after every step. Before timing, all three sides must give the same results
(both captions' text, the drawing's pixels), else the script stops: the comparison would be
meaningless. Runs alternate so machine noise hits both equally; the script prints the median of
each and their ratio. Tiny profile by default (no download):

    python benchmarks/workflow_overhead.py [--profile tiny] [--rounds 15] [--image PATH]

It also times the same calls on the backends' own methods (`LlavaBackend.generate`,
`DiffusionBackend.generate`), which separates the engine's cost from the backends' own.
"""

from __future__ import annotations

import statistics

from _common import alternate, parser, raw_generate, report, setup

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


def same_results(engine: tuple[str, str, str], other: tuple[str, str, str], name: str) -> None:
    """(caption text, drawing path, caption text) from the engine and from `name` must agree:
    the same text, and the same pixels (PNG is lossless; metadata aside)."""
    import numpy as np
    from PIL import Image

    for what, ours, theirs in (("first caption", engine[0], other[0]), ("second caption", engine[2], other[2])):
        assert ours == theirs, f"workflow engine and {name} disagree on the {what}: {ours!r} vs {theirs!r}"
    ours, theirs = (np.asarray(Image.open(p).convert("RGB")) for p in (engine[1], other[1]))
    assert ours.shape == theirs.shape and np.array_equal(ours, theirs), \
        f"workflow engine and {name} disagree on the drawing's pixels ({engine[1]} vs {other[1]})"
    print(f"same results: the workflow engine and the {name} give the same captions and the same drawing")


def main() -> None:
    args = parser(__doc__, rounds=15).parse_args()

    import torch
    from PIL import Image

    from visionloop.workflows import load_workflow, run_workflow

    config, registry, ctx = setup(args.config, args.profile)
    work = ctx.out_dir
    (work / "bench.yaml").write_text(WORKFLOW)
    wf = load_workflow(str(work / "bench.yaml"), config, registry)
    first = run_workflow(wf, {"image": args.image}, ctx, registry, work / "runs")  # loads models, warms up
    assert first.ok, first.error
    llava, sd = ctx.models.llava(), ctx.models.diffusion()
    look, draw, check = first.steps
    d = draw["data"]
    pipe = sd.pipeline("text2img")

    def direct() -> tuple[str, str, str]:
        text = raw_generate(llava, args.image, look["data"]["prompt"], look["data"]["max_new_tokens"])
        with torch.inference_mode():
            picture = pipe(prompt=text, num_inference_steps=d["steps"], guidance_scale=d["guidance"],
                           width=d["width"], height=d["height"],
                           generator=torch.Generator("cpu").manual_seed(d["seed"])).images[0]
        path = work / "direct.png"
        picture.save(path)
        return text, str(path), raw_generate(llava, path, check["data"]["prompt"], check["data"]["max_new_tokens"])

    def backends() -> tuple[str, str, str]:
        """The same calls on the loaded backends' own methods (no tool, no engine)."""
        picture = Image.open(args.image).convert("RGB")
        text = llava.generate([picture], look["data"]["prompt"], max_new_tokens=look["data"]["max_new_tokens"],
                              temperature=0.0, top_p=1.0).text
        gen = sd.generate("text2img", prompt=text, negative_prompt=None, steps=d["steps"], guidance=d["guidance"],
                          seeds=[d["seed"]], width=d["width"], height=d["height"])
        path = work / "backend.png"
        gen.images[0].save(path)
        return text, str(path), llava.generate([Image.open(path).convert("RGB")], check["data"]["prompt"],
                                               max_new_tokens=check["data"]["max_new_tokens"], temperature=0.0,
                                               top_p=1.0).text

    engine_side = (look["text"], draw["images"][0], check["text"])
    for name, side in (("raw library calls", direct), ("backend methods", backends)):
        same_results(engine_side, side(), name)

    runs = []

    def engine() -> None:
        out = run_workflow(wf, {"image": args.image}, ctx, registry, work / "runs")
        assert out.ok, out.error
        runs.append(out)

    times = alternate(args.rounds, **{"workflow engine": engine, "raw library calls": direct,
                                      "backend methods": backends})
    # the engine's time outside the tool calls: references, run folder, manifests
    bookkeeping = [t - sum(s["seconds"] for s in out.steps) for t, out in zip(times["workflow engine"], runs)]
    print(f"profile {args.profile}, device {llava.device}, {args.rounds} rounds, 3 steps (caption, draw, caption)")
    report(times, baseline="raw library calls")
    engine_vs_backends = statistics.median(a / b for a, b in zip(times["workflow engine"], times["backend methods"]))
    print(f"ratio workflow engine / backend methods (median of per-round ratios): {engine_vs_backends:.3f}")
    print(f"engine bookkeeping outside the tool calls (refs, run folder, manifests): "
          f"median {statistics.median(bookkeeping) * 1000:.1f} ms per run")


if __name__ == "__main__":
    main()
