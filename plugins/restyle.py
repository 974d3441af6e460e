"""`restyle`: redraw an image in a style (image to image). Without a prompt, LLaVA first
describes the image and the prompt becomes "<description>, <style>": this is where LLaVA
hands its words to Stable Diffusion (as data: cleaned, length-capped text, never a command)."""

from visionloop.toolkit.diffusion import (DATA_KEYS, MAX_PROMPT_CHARS, check_settings, clean_prompt, common_inputs,
                                      generate, pick_loras, pick_seeds, pick_size)
from visionloop.errors import InputError
from visionloop.hookspecs import hookimpl
from visionloop.tools import Input, Tool

DESCRIBE = "Describe this image in one sentence."
MAX_CAPTION_CHARS = 300
#: What `ask_llava` records that replaying the caption needs (timings and image paths are not).
CAPTION_CALL_KEYS = ("model", "model_id", "revision", "backend", "base_url", "digest", "question", "prompt",
                     "max_new_tokens", "do_sample", "temperature", "top_p", "seed", "new_tokens", "device")


def restyle(ctx, image, style=None, prompt=None, strength=0.6, negative_prompt=None, width=None, height=None,
            size=None, steps=None, guidance=None, seed=None, scheduler=None, count=1, lora=None):
    from PIL import Image

    # 1. Check inputs before any model loads.
    style = clean_prompt(style, "style")
    given = clean_prompt(prompt)
    if not style and not given:
        raise InputError("restyle needs --style (or at least --prompt)")
    negative_prompt = clean_prompt(negative_prompt, "negative_prompt")
    steps, guidance = check_settings(ctx, steps, guidance, strength)
    picture = ctx.load_image(image)
    width, height = pick_size(ctx, width, height, size, fit=picture.size)
    seeds = pick_seeds(seed, count)
    loras = pick_loras(lora)
    extra = {"image": str(image), "input_size": list(picture.size), "resize": "lanczos", "style": style,
             "notes": []}
    if width < picture.width or height < picture.height:  # a redraw may be smaller, but never silently
        extra["notes"].append(f"redrawn at the working size {width}x{height}, smaller than the input's "
                              f"{picture.width}x{picture.height} (--size picks another)")
    # 2. The prompt: the user's, or LLaVA's description of the image, then the style.
    if given:
        subject = given
    else:
        from visionloop.toolkit.vision import ask_llava

        described = ask_llava(ctx, "restyle", [image], DESCRIBE)
        subject = full = clean_prompt(described.text, "caption")[:MAX_CAPTION_CHARS]
        # The text encoder reads a fixed number of tokens (77 for SD 1.5) and drops the rest:
        # shorten the description, never the style the user asked for.
        subject, dropped = fit_description(ctx.models.diffusion().pipeline("img2img"), subject, style)
        if dropped:
            extra["notes"].append(f"LLaVA's description was shortened by {dropped} words so that the style "
                                  "fits in what the text encoder reads")
        # the caption call's own record (chat-templated prompt, decoding settings, model), so
        # the LLaVA half of a restyle can be replayed from the data like the diffusion half
        call = {key: described.data[key] for key in CAPTION_CALL_KEYS if key in described.data}
        extra.update(caption=subject, caption_full=full, caption_model=described.data.get("model"),
                     caption_question=DESCRIBE, caption_call=call)
    final = ", ".join(part for part in (subject, style) if part)
    # 3. Redraw the image, resized to the output size.
    init = picture.resize((width, height), Image.Resampling.LANCZOS)
    return generate(ctx, "restyle", "img2img", prompt=final, negative_prompt=negative_prompt, steps=steps,
                    guidance=guidance, seeds=seeds, width=width, height=height, scheduler=scheduler,
                    image=init, strength=strength, extra=extra, loras=loras)


def fit_description(pipe, subject: str, style: str | None) -> tuple[str, int]:
    """`subject` cut at a word boundary so that "subject, style" fits the pipeline's tokenizer;
    returns it and the number of words dropped."""
    tokenizer = getattr(pipe, "tokenizer", None)
    if tokenizer is None or not style:
        return subject, 0
    words = subject.split()
    limit = tokenizer.model_max_length
    kept = len(words)
    while kept > 0 and len(tokenizer(", ".join([" ".join(words[:kept]), style])).input_ids) > limit:
        kept -= 1
    return " ".join(words[:kept]), len(words) - kept


@hookimpl
def register_tools(register):
    register(Tool(
        name="restyle",
        description="Redraw an image in a style (image to image); LLaVA describes it when no prompt is given.",
        inputs=[Input("image", "image", help="the image to redraw", required=True, positional=True),
                Input("style", "text", None, "the style, e.g. 'a watercolour painting'", max_chars=MAX_PROMPT_CHARS),
                Input("prompt", "text", None, "what the image shows (default: LLaVA describes it)",
                      max_chars=MAX_PROMPT_CHARS),
                *common_inputs(strength=0.6)],
        run=restyle,
        returns_images=True,
        data_keys=(*DATA_KEYS, "image", "input_size", "resize", "style", "caption", "caption_full", "caption_model",
                   "caption_question", "caption_call"),  # and generate's: restyle's `extra`
    ))
