"""The one way tools ask LLaVA about images: shared by see, caption, read-text and restyle.

It loads the images safely, builds the prompt with the model's chat template, generates with
the profile's settings (overridable per call) and records everything needed to reproduce the
answer in `ToolResult.data`.
"""

from __future__ import annotations

from agent.tools import Input, ToolResult


def generation_inputs() -> list[Input]:
    """Decoding inputs every LLaVA tool takes; `None` means the profile's setting."""
    return [
        Input("max_new_tokens", "int", None, "longest answer in tokens (default: the profile's)", min=1, max=8192),
        Input("temperature", "float", None, "0 = greedy (default); above 0 samples", min=0.0, max=5.0),
        Input("top_p", "float", None, "nucleus sampling cut-off, used when temperature > 0", min=0.01, max=1.0),
        Input("seed", "int", None, "seed for sampling, so a sampled answer can be reproduced", min=0),
    ]


def ask_llava(ctx, tool: str, images: list[str], question: str, max_new_tokens: int | None = None,
              temperature: float | None = None, top_p: float | None = None, seed: int | None = None,
              history: list[tuple[str, str]] = ()) -> ToolResult:
    """Ask LLaVA `question` about the image files `images` (all in one prompt)."""
    spec = ctx.config.active.vision
    # 1. Check inputs: every image loads (one-line errors) before the model does.
    pictures = [ctx.load_image(path) for path in images]
    # 2. The shared model and the exact prompt.
    llava = ctx.models.llava()
    prompt = llava.build_prompt(question, len(pictures), history)
    # 3. Generate with the profile's settings unless the call overrides them.
    gen = llava.generate(
        pictures, prompt,
        max_new_tokens=max_new_tokens or spec.max_new_tokens,
        temperature=spec.temperature if temperature is None else temperature,
        top_p=spec.top_p if top_p is None else top_p,
        seed=seed, on_text=ctx.on_text, cancel=ctx.cancel,
    )
    data = {"model": llava.source, "model_id": llava.model_id, "revision": llava.revision,
            "question": question, "prompt": gen.prompt, "images": [str(p) for p in images],
            **gen.settings, "new_tokens": gen.new_tokens, "generate_seconds": round(gen.seconds, 4),
            "device": llava.device}
    return ToolResult(tool=tool, text=gen.text, data=data)
