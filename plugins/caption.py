"""`caption`: describe an image, briefly or in detail. Several files give one result each."""

from visionloop.hookspecs import hookimpl
from visionloop.tools import Input, Tool
from visionloop.toolkit.vision import DATA_KEYS, ask_llava, generation_inputs

PROMPTS = {
    "short": "Describe this image in one sentence.",
    "long": "Describe this image in detail: the subject, the setting, the colours, the style and any text.",
}


def caption(ctx, image, detail="short", max_new_tokens=None, temperature=None, top_p=None, seed=None):
    result = ask_llava(ctx, "caption", [image], PROMPTS[detail], max_new_tokens, temperature, top_p, seed)
    result.data["detail"] = detail
    return result


def caption_many(ctx, calls):
    """Several images in batched `generate` calls (`vision.batch_size`), or None: one by one."""
    from visionloop.toolkit.vision_batch import ask_llava_many, can_batch

    if not can_batch(ctx, calls):
        return None
    results = ask_llava_many(ctx, "caption", [(c["image"], PROMPTS[c.get("detail") or "short"],
                                               c.get("max_new_tokens")) for c in calls])
    for result, call in zip(results or [], calls):
        if result.ok:
            result.data["detail"] = call.get("detail") or "short"
    return results


@hookimpl
def register_tools(register):
    register(Tool(
        name="caption",
        description="Describe an image (one result per image).",
        inputs=[Input("image", "image", help="image file(s)", required=True, multiple=True, positional=True),
                Input("detail", "choice", "short", "short: one sentence; long: a detailed description",
                      choices=("short", "long")),
                *generation_inputs()],
        run=caption,
        run_batch=caption_many,
        each="image",
        returns_images=False,
        data_keys=(*DATA_KEYS, "detail"),
        streams_text=True,
    ))
