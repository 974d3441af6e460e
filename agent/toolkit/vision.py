"""The one way tools ask LLaVA about images: shared by see, caption, read-text and restyle.

It loads the images safely, asks the profile's vision backend (the `VisionBackend` interface:
transformers in this process, or an Ollama / OpenAI-compatible server) with the profile's
settings (overridable per call), and records everything needed to reproduce the answer in
`ToolResult.data`, including which backend, server and model digest answered.
"""

from __future__ import annotations

from visionloop.errors import InputError
from visionloop.tools import Input, ToolResult


#: Every `data` key `ask_llava` may set (its generation settings included): the start of each
#: LLaVA tool's `Tool.data_keys`. A key added below goes here too (tests/test_workflow_returns.py).
DATA_KEYS = ("model", "model_id", "revision", "backend", "base_url", "digest", "question", "prompt", "images",
             "prompt_tokens", "image_tokens", "context_length", "max_new_tokens", "do_sample", "temperature", "top_p",
             "seed", "new_tokens", "generate_seconds", "device", "threads", "history_turns", "sent_sizes", "notes",
             "dtype", "quantize", "image_features", "batch")


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
    """Ask LLaVA `question` about the image files `images` (all in one prompt), through the
    profile's vision backend (`ctx.models.llava()`: transformers in this process, or a server).

    With `conversational`, a chat's earlier turns about the same images (`ctx.history`) go into
    the prompt, the oldest left out first so that the prompt and the answer fit the model's
    context; one-off jobs (caption, read-text, restyle) never pass it.
    """
    spec = ctx.config.active.vision
    n_new = max_new_tokens or spec.max_new_tokens
    # 1. Check inputs: every image loads (one-line errors) before the model does.
    pictures = [ctx.load_image(path) for path in images]
    # 2. The shared model, the conversation so far (if any) and the exact prompt; a job in this
    #    process runs with the configured intra-op thread count (repeated greedy answers agree).
    threads = None
    if spec.backend == "transformers":
        from visionloop.models.threads import pin

        threads = pin(ctx.config)
    llava = ctx.models.llava()
    for mark in llava.placeholders:
        if mark in question:
            raise InputError(f"question: contains {mark!r}, which {llava.model_id} reserves for the images "
                             "themselves; reword it without that marker")
    image_tokens = llava.image_tokens(pictures)

    def size(turns) -> int:
        return llava.prompt_tokens(question, len(pictures), turns, image_tokens)

    history, dropped = [], 0
    chat_history = ctx.history if conversational else None
    if chat_history is not None:
        history, dropped = chat_history(images, lambda turns: llava.fits(size(turns), n_new))
    prompt_tokens = size(history)
    check_fits(llava, "question" if tool == "see" else tool, prompt_tokens, image_tokens, n_new)
    # 3. Generate with the profile's settings unless the call overrides them.
    temp = spec.temperature if temperature is None else temperature
    unused = [name for name, value in (("top_p", top_p), ("seed", seed)) if value is not None]
    notes = [f"{', '.join(unused)}: no effect with greedy decoding (temperature 0); "
             "give a temperature above 0 to sample"] if unused and temp == 0 else []
    gen = llava.ask(
        pictures, question, history,
        max_new_tokens=n_new,
        temperature=temp,
        top_p=spec.top_p if top_p is None else top_p,
        seed=seed, on_text=ctx.on_text, cancel=ctx.cancel,
    )
    data = result_data(llava, question, images, gen, prompt_tokens, image_tokens, threads)
    if chat_history is not None:
        data["history_turns"] = len(history)
    if dropped:
        notes.insert(0, f"the {dropped} oldest turn(s) were left out to fit the model's context")
    if notes:
        data["notes"] = notes
    return ToolResult(tool=tool, text=gen.text, data=data)


def result_data(llava, question: str, images: list[str], gen, prompt_tokens: int, image_tokens: int,
                threads: int | None) -> dict:
    """`data` of one answer: what answered, the exact prompt and settings, the sizes and timings."""
    described = llava.describe()  # backend, base_url, model, digest: what answered
    data = {"model": described["model"], "model_id": llava.model_id, "revision": llava.revision,
            "backend": described["backend"],
            **{key: described[key] for key in ("base_url", "digest") if described.get(key)},
            "question": question, "prompt": gen.prompt, "images": [str(p) for p in images],
            "prompt_tokens": prompt_tokens, "image_tokens": image_tokens, "context_length": llava.context_length,
            **gen.settings, "new_tokens": gen.new_tokens, "generate_seconds": round(gen.seconds, 4),
            "device": llava.device, **gen.extra}
    if threads is not None:
        data["threads"] = threads
    return data


def check_fits(llava, what: str, prompt_tokens: int, image_tokens: int, n_new: int) -> None:
    """Refuse, in one line, a prompt that leaves less room than `max_new_tokens` in the model's
    context: the model would otherwise see a cut prompt, or stop short, and say nothing.
    `what` names the argument to blame (the question, or the tool when its prompt is fixed)."""
    limit = llava.context_length
    if prompt_tokens + n_new <= limit:
        return
    left = max(limit - prompt_tokens, 0)
    images = f", {image_tokens} of them for the image(s)" if image_tokens else ""
    text_to_blame = what == "question" and image_tokens + n_new <= limit
    fix = "shorten the question" if text_to_blame else "use fewer or smaller images"
    if left:
        fix += " or lower max_new_tokens"
    raise InputError(f"{what}: the prompt is {prompt_tokens} tokens{images}, and {llava.model_id}'s context is "
                     f"{limit} tokens, which leaves {left} for the answer (max_new_tokens is {n_new}): {fix}")
