"""`read-text`: read the text in an image (OCR). One result per image."""

from agent.hookspecs import hookimpl
from agent.tools import Input, Tool
from agent.vision import ask_llava, generation_inputs

LLAVA_PROMPT = "Read all the text in this image and write it out exactly, line by line. Write nothing else."


def read_text(ctx, image, engine="llava", max_new_tokens=None, temperature=None, top_p=None, seed=None):
    result = ask_llava(ctx, "read-text", [image], LLAVA_PROMPT, max_new_tokens, temperature, top_p, seed)
    result.data["engine"] = "llava"
    return result


@hookimpl
def register_tools(register):
    register(Tool(
        name="read-text",
        description="Read the text in an image (one result per image).",
        inputs=[Input("image", "image", help="image file(s)", required=True, multiple=True, positional=True),
                Input("engine", "choice", "llava", "which engine reads the text", choices=("llava",)),
                *generation_inputs()],
        run=read_text,
        each="image",
    ))
