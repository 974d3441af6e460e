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
              conversational: bool = False) -> ToolResult:
    """Ask LLaVA `question` about the image files `images` (all in one prompt).

    With `conversational`, a chat's earlier turns about the same images (`ctx.history`) go into
    the prompt, the oldest left out first so that the prompt and the answer fit the model's
    context; one-off jobs (caption, read-text, restyle) never pass it.
    """
    spec = ctx.config.active.vision
    n_new = max_new_tokens or spec.max_new_tokens
    # 1. Check inputs: every image loads (one-line errors) before the model does.
    pictures = [ctx.load_image(path) for path in images]
    # 2. The shared model, the conversation so far (if any) and the exact prompt.
    llava = ctx.models.llava()
    history, dropped = [], 0
    chat_history = ctx.history if conversational else None
    if chat_history is not None:
        room = llava.context_length - n_new

        def fits(turns):
            return llava.count_tokens(llava.build_prompt(question, len(pictures), turns), len(pictures)) <= room

        history, dropped = chat_history(images, fits)
    prompt = llava.build_prompt(question, len(pictures), history)
    # 3. Generate with the profile's settings unless the call overrides them.
    gen = llava.generate(
        pictures, prompt,
        max_new_tokens=n_new,
        temperature=spec.temperature if temperature is None else temperature,
        top_p=spec.top_p if top_p is None else top_p,
        seed=seed, on_text=ctx.on_text, cancel=ctx.cancel,
    )
    data = {"model": llava.source, "model_id": llava.model_id, "revision": llava.revision,
            "question": question, "prompt": gen.prompt, "images": [str(p) for p in images],
            **gen.settings, "new_tokens": gen.new_tokens, "generate_seconds": round(gen.seconds, 4),
            "device": llava.device}
    if chat_history is not None:
        data["history_turns"] = len(history)
    if dropped:
        data["notes"] = [f"the {dropped} oldest turn(s) were left out to fit the model's context"]
    return ToolResult(tool=tool, text=gen.text, data=data)
