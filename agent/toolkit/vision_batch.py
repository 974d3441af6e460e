"""Several one-off questions to the in-process LLaVA in batched `generate` calls (`caption` over
a folder): `vision.batch_size` pictures per call.

Greedy decoding only, and each answer is the one a single call gives: with full-precision
weights a left-padded batch decodes the same tokens. Under int8 dynamic quantization the
activations of a whole batch share one scale, so an answer would depend on its neighbours:
`batch_size: auto` is then 1 (an explicit size still batches, with a note in `data`). Sampling,
a server backend or a batch of one run the plain way, one call each (`ask_llava`).
"""

from __future__ import annotations

from visionloop.errors import Cancelled, VisionloopError
from visionloop.tools import ToolResult

INT8_NOTE = ("batched under int8 quantization: the batch shares activation scales, so this answer "
             "can differ from a single call's (vision.batch_size: auto keeps int8 runs one at a time)")


def batch_size(ctx, llava) -> int:
    """How many pictures go into one `generate` call: the setting, or `auto`: 1 for servers and
    int8 models, else by device memory (CUDA: 1 per 2 GiB free, at most 16; CPU and MPS: 4)."""
    spec = ctx.config.active.vision
    if spec.batch_size != "auto":
        return int(spec.batch_size)
    if spec.backend != "transformers" or getattr(llava, "quantize", "none") != "none":
        return 1
    if str(llava.device).startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info(torch.device(llava.device))
        return max(1, min(16, int(free // 2**31)))
    return 4


def ask_llava_many(ctx, tool: str, items: list[tuple[str, str, int | None]]) -> list[ToolResult] | None:
    """Ask each (image file, question, max_new_tokens) of `items` greedily; one result per item,
    in order, or None when the batch size is 1 (the caller then asks one at a time). An item
    whose image does not load gets its error alone; the others still run."""
    from visionloop.models.threads import pin
    from visionloop.toolkit.vision import check_fits, result_data

    spec = ctx.config.active.vision
    llava = ctx.models.llava()
    size = batch_size(ctx, llava)
    if size <= 1:
        return None
    threads = pin(ctx.config)
    results: list[ToolResult | None] = [None] * len(items)
    ready = []  # (index, picture, prompt, prompt_tokens, image_tokens, max_new_tokens)
    for i, (path, question, n_new) in enumerate(items):
        try:
            picture = ctx.load_image(path)
            image_tokens = llava.image_tokens([picture])
            n_new = n_new or spec.max_new_tokens
            prompt_tokens = llava.prompt_tokens(question, 1, [], image_tokens)
            check_fits(llava, tool, prompt_tokens, image_tokens, n_new)
        except VisionloopError as exc:
            results[i] = ToolResult(tool=tool, error=str(exc))
            continue
        ready.append((i, picture, llava.build_prompt(question, 1), prompt_tokens, image_tokens, n_new))
    # one batch per run of `size` items with the same answer length
    groups: dict[int, list] = {}
    for entry in ready:
        groups.setdefault(entry[5], []).append(entry)
    for n_new, entries in groups.items():
        for start in range(0, len(entries), size):
            if ctx.cancel is not None and ctx.cancel.is_set():
                raise Cancelled("cancelled")
            chunk = entries[start:start + size]
            gens = llava.generate_many([([picture], prompt) for _, picture, prompt, *_ in chunk], n_new)
            for (i, _, _, prompt_tokens, image_tokens, _), gen in zip(chunk, gens):
                path, question, _ = items[i]
                data = result_data(llava, question, [path], gen, prompt_tokens, image_tokens, threads)
                if len(chunk) > 1 and llava.quantize != "none":
                    data["notes"] = [INT8_NOTE]
                results[i] = ToolResult(tool=tool, text=gen.text, data=data)
    return results


def can_batch(ctx, calls: list[dict]) -> bool:
    """Whether these calls may share `generate` calls: in-process, greedy, more than one."""
    spec = ctx.config.active.vision
    if len(calls) < 2 or spec.backend != "transformers":
        return False
    return all((c.get("temperature") if c.get("temperature") is not None else spec.temperature) == 0
               and c.get("seed") is None and c.get("top_p") is None for c in calls)
