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
        each="image",
        returns_images=False,
        data_keys=(*DATA_KEYS, "detail"),
        streams_text=True,
    ))
