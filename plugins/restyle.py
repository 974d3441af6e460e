"""`restyle`: redraw an image in a style (image to image). Without a prompt, LLaVA first
describes the image and the prompt becomes "<description>, <style>": this is where LLaVA
hands its words to Stable Diffusion (as data: cleaned, length-capped text, never a command).

The style may also come from a picture (`--style-image`): LLaVA describes its style (medium,
palette, brushwork, lighting, era; not its subject) and that joins the prompt; when the profile
names an IP-Adapter (`diffusion.ip_adapter`), the picture also goes in as an image prompt at
`--style-strength` (`visionloop.models.ip_adapter`). Without one, the words alone carry the
style, and `data` says so (`style_path: text`)."""

from visionloop.toolkit.diffusion import (DATA_KEYS, MAX_PROMPT_CHARS, check_settings, clean_prompt, common_inputs,
                                      generate, pick_loras, pick_seeds, pick_size)
from visionloop.errors import InputError, ModelError
from visionloop.hookspecs import hookimpl
from visionloop.tools import Input, Tool

DESCRIBE = "Describe this image in one sentence."
MAX_CAPTION_CHARS = 300
STYLE_QUESTION = ("Describe only the style of this picture, not what it shows: its medium, colour palette, "
                  "brushwork or texture, lighting and era, in one short phrase.")
MAX_STYLE_CHARS = 200
#: What `ask_llava` records that replaying the caption needs (timings and image paths are not).
CAPTION_CALL_KEYS = ("model", "model_id", "revision", "backend", "base_url", "digest", "question", "prompt",
                     "max_new_tokens", "do_sample", "temperature", "top_p", "seed", "new_tokens", "device")


def restyle(ctx, image, style=None, prompt=None, strength=0.6, negative_prompt=None, width=None, height=None,
            size=None, steps=None, guidance=None, seed=None, scheduler=None, count=1, lora=None,
            style_image=None, style_strength=0.6):
    from PIL import Image

    # 1. Check inputs before any model loads.
    style = clean_prompt(style, "style")
    given = clean_prompt(prompt)
    if not style and not given and style_image is None:
        raise InputError("restyle needs --style or --style-image (or at least --prompt)")
    negative_prompt = clean_prompt(negative_prompt, "negative_prompt")
    steps, guidance = check_settings(ctx, steps, guidance, strength)
    picture = ctx.load_image(image)
    reference = ctx.load_image(style_image) if style_image is not None else None  # one line when unusable
    width, height = pick_size(ctx, width, height, size, fit=picture.size)
    seeds = pick_seeds(seed, count)
    loras = pick_loras(lora)
    extra = {"image": str(image), "input_size": list(picture.size), "resize": "lanczos", "style": style,
             "notes": []}
    if width < picture.width or height < picture.height:  # a redraw may be smaller, but never silently
        extra["notes"].append(f"redrawn at the working size {width}x{height}, smaller than the input's "
                              f"{picture.width}x{picture.height} (--size picks another)")
    # 2. The prompt: the user's, or LLaVA's description of the image, then the style (the
    #    user's words, then LLaVA's description of the reference's style).
    if reference is not None:
        style = ", ".join(part for part in (style, describe_style(ctx, style_image, extra)) if part)
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
    # 3. Redraw the image, resized to the output size; the reference as an image prompt too
    #    when the profile has an IP-Adapter.
    init = picture.resize((width, height), Image.Resampling.LANCZOS)
    run = {"prompt": final, "negative_prompt": negative_prompt, "steps": steps, "guidance": guidance, "seeds": seeds,
           "width": width, "height": height, "scheduler": scheduler, "image": init, "strength": strength,
           "extra": extra, "loras": loras}
    adapter = ctx.models.ip_adapter() if reference is not None else None
    if reference is not None and adapter is None:
        extra.update(style_path="text", ip_adapter=None, ip_adapter_scale=None)
        extra["notes"].append("no IP-Adapter in the profile (diffusion.ip_adapter): the reference's style "
                              "reached the picture through LLaVA's words only")
    if adapter is None:
        return generate(ctx, "restyle", "img2img", **run)
    from visionloop.models.ip_adapter import attached, guided

    backend = ctx.models.diffusion()
    if getattr(backend.text2img, "unet", None) is None or not hasattr(backend.text2img, "load_ip_adapter"):
        raise ModelError(f"{backend.model_id}: this model takes no IP-Adapter; remove diffusion.ip_adapter "
                         "from the profile to restyle from the picture's description alone")
    embeds = adapter.embeds(reference, guided(backend.img2img, guidance))
    extra.update(style_path="text+image", ip_adapter=adapter.record(float(style_strength)),
                 ip_adapter_scale=float(style_strength))
    with attached(backend, adapter, float(style_strength)):
        return generate(ctx, "restyle", "img2img", **run, pipeline_kwargs={"ip_adapter_image_embeds": embeds})


def describe_style(ctx, style_image, extra: dict) -> str:
    """LLaVA's words for the reference's style (not its subject), recorded in `extra` with the
    reference's path and sha256 and the call that made them."""
    from visionloop.images import sha256_file
    from visionloop.toolkit.vision import ask_llava

    described = ask_llava(ctx, "restyle", [style_image], STYLE_QUESTION)
    words = clean_prompt(described.text, "style description")[:MAX_STYLE_CHARS].strip(" ,.")
    call = {key: described.data[key] for key in CAPTION_CALL_KEYS if key in described.data}
    extra.update(style_image=str(style_image), style_image_sha256=sha256_file(style_image),
                 style_description=words, style_question=STYLE_QUESTION, style_call=call)
    return words


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
                Input("style_image", "image", None, "a picture whose style to take (LLaVA describes it; with an "
                                                    "IP-Adapter in the profile it is an image prompt too)"),
                Input("style_strength", "float", 0.6, "how strongly the style picture steers, as an image prompt "
                                                      "(the IP-Adapter's scale; 0 = not at all)", min=0.0, max=1.0),
                *common_inputs(strength=0.6)],
        run=restyle,
        returns_images=True,
        data_keys=(*DATA_KEYS, "image", "input_size", "resize", "style", "caption", "caption_full", "caption_model",
                   "caption_question", "caption_call", "style_image", "style_image_sha256", "style_description",
                   "style_question", "style_call", "style_path", "ip_adapter", "ip_adapter_scale"),
                   # and generate's: restyle's `extra`
    ))
