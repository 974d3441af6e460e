"""`see`: answer a question about one or more images together (LLaVA takes several images
in one prompt). Several questions (`-q A -q B`) give one result each; the pictures are encoded
once and the later questions reuse their encoding."""

from visionloop.hookspecs import hookimpl
from visionloop.tools import Input, Tool
from visionloop.toolkit.vision import DATA_KEYS, ask_llava, generation_inputs


def see(ctx, image, question, max_new_tokens=None, temperature=None, top_p=None, seed=None):
    return ask_llava(ctx, "see", image, question, max_new_tokens, temperature, top_p, seed,
                     conversational=True)


@hookimpl
def register_tools(register):
    register(Tool(
        name="see",
        description="Answer a question about one or more images (all given to LLaVA together).",
        inputs=[Input("image", "image", help="image file(s)", required=True, multiple=True, positional=True),
                Input("question", "text", help="what to ask about the images (repeat -q for several questions: "
                                                 "one answer each)", required=True, multiple=True, flags=("-q",)),
                *generation_inputs()],
        run=see,
        each="question",
        returns_images=False,
        data_keys=DATA_KEYS,
        streams_text=True,
    ))
