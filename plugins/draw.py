"""`draw`: text to image with Stable Diffusion."""

from visionloop.toolkit.diffusion import (DATA_KEYS, MAX_PROMPT_CHARS, check_settings, clean_prompt, common_inputs,
                                      generate, pick_loras, pick_seeds, pick_size)
from visionloop.errors import InputError
from visionloop.hookspecs import hookimpl
from visionloop.tools import Input, Tool


def draw(ctx, prompt, negative_prompt=None, width=None, height=None, size=None, steps=None, guidance=None,
         seed=None, scheduler=None, count=1, lora=None):
    # 1. Check inputs (nothing loads before every value is known to be usable).
    prompt = clean_prompt(prompt)
    if not prompt:  # nothing to draw: refuse rather than draw noise from an empty prompt
        raise InputError("prompt: must not be empty")
    negative_prompt = clean_prompt(negative_prompt, "negative_prompt")
    steps, guidance = check_settings(ctx, steps, guidance)
    width, height = pick_size(ctx, width, height, size)
    seeds = pick_seeds(seed, count)
    loras = pick_loras(lora)
    # 2. Generate and save.
    return generate(ctx, "draw", "text2img", prompt=prompt, negative_prompt=negative_prompt, steps=steps,
                    guidance=guidance, seeds=seeds, width=width, height=height, scheduler=scheduler, loras=loras)


@hookimpl
def register_tools(register):
    register(Tool(
        name="draw",
        description="Draw images from a text prompt (Stable Diffusion, text to image).",
        inputs=[Input("prompt", "text", help="what to draw", required=True, positional=True,
                      max_chars=MAX_PROMPT_CHARS),
                *common_inputs()],
        run=draw,
        returns_images=True,
        data_keys=DATA_KEYS,
    ))
