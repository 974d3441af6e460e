"""`restyle`: redraw an image in a style (image to image). Without a prompt, LLaVA first
describes the image and the prompt becomes "<description>, <style>": this is where LLaVA
hands its words to Stable Diffusion (as data: cleaned, length-capped text, never a command).

The style may also come from a picture (`--style-image`): LLaVA describes its style (medium,
palette, brushwork, lighting, era; not its subject) and that joins the prompt; when the profile
names an IP-Adapter (`diffusion.ip_adapter`), the picture also goes in as an image prompt at
`--style-strength` (`visionloop.models.ip_adapter`). Without one, the words alone carry the
style, and `data` says so (`style_path: text`)."""

from visionloop.errors import InputError, ModelError
from visionloop.hookspecs import hookimpl
from visionloop.toolkit.diffusion import (
    DATA_KEYS,
    MAX_PROMPT_CHARS,
    check_settings,
    clean_prompt,
    common_inputs,
    generate,
    pick_loras,
    pick_seeds,
    pick_size,
)
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
    if style_image is None and style_strength != 0.6:  # the default: given or not, it changes nothing here
        extra["notes"].append("--style-strength has no effect without --style-image (and an IP-Adapter in the "
                              "profile)")
    looks = describe_style(ctx, style_image, extra) if reference is not None else ""
    if given:
        subject = given
    else:
        from visionloop.toolkit.vision import ask_llava

        described = ask_llava(ctx, "restyle", [image], DESCRIBE)
        subject = full = clean_prompt(described.text, "caption")[:MAX_CAPTION_CHARS]
    # The text encoder reads a fixed number of tokens (77 for SD 1.5) and drops the rest: shorten
    # LLaVA's words (the photo's description and the style picture's, each keeping a fair share),
    # never the user's own prompt or --style.
    cut = ""
    if looks or (style and not given):
        full_looks = looks
        subject, looks, cut = fit_prompt(ctx.models.diffusion().pipeline("img2img"), subject, style, looks,
                                         subject_fixed=bool(given))
        if looks != full_looks:
            extra.update(style_description=looks, style_description_full=full_looks)
    style = ", ".join(part for part in (style, looks) if part)
    if cut:
        extra["notes"].append(cut)
    if not given:
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
                              "reached the picture through LLaVA's words only"
                              + (", and --style-strength had no effect" if style_strength != 0.6 else ""))
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


def fit_prompt(pipe, subject: str, style: str | None, looks: str, subject_fixed: bool = False
               ) -> tuple[str, str, str]:
    """"subject, style, looks" cut to what the pipeline's tokenizer reads: LLaVA's words for the
    photo (`subject`, unless `subject_fixed`: the user's prompt) and for the style picture
    (`looks`) lose words from their end, the longer of the two first, so that when both are long
    each keeps about half of the room the user's `style` leaves (`style` is never cut). Returns
    both, and a note saying what was dropped ("" when nothing was)."""
    tokenizer = getattr(pipe, "tokenizer", None)
    if tokenizer is None:
        return subject, looks, ""
    limit = tokenizer.model_max_length

    def size(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False, verbose=False).input_ids) if text else 0

    def fits(a: list[str], b: list[str]) -> bool:
        text = ", ".join(part for part in (" ".join(a), style, " ".join(b)) if part)
        return len(tokenizer(text, verbose=False).input_ids) <= limit

    words, extra = subject.split(), looks.split()
    kept_s, kept_l = len(words), len(extra)
    while not fits(words[:kept_s], extra[:kept_l]):
        cut_subject = not subject_fixed and kept_s > 0 and (
            kept_l == 0 or size(" ".join(words[:kept_s])) >= size(" ".join(extra[:kept_l])))
        if cut_subject:
            kept_s -= 1
        elif kept_l > 0:
            kept_l -= 1
        else:  # only the user's own words are left: the encoder drops what is past its limit
            break
    parts = []
    if kept_s < len(words):
        parts.append(f"the photo's description shortened by {len(words) - kept_s} words (of {len(words)})")
    if kept_l < len(extra):
        parts.append(f"the style picture's description shortened by {len(extra) - kept_l} words (of {len(extra)})")
    note = (f"LLaVA's words were cut so that the prompt fits in the {limit} tokens the text encoder reads: "
            f"{' and '.join(parts)}" + ("; your --style words were kept" if style else "") if parts else "")
    return " ".join(words[:kept_s]), " ".join(extra[:kept_l]), note


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
                                                      "(the IP-Adapter's scale; 0 = not at all); needs --style-image "
                                                      "and an IP-Adapter in the profile (diffusion.ip_adapter)",
                      min=0.0, max=1.0),
                *common_inputs(strength=0.6)],
        run=restyle,
        returns_images=True,
        data_keys=(*DATA_KEYS, "image", "input_size", "resize", "style", "caption", "caption_full", "caption_model",
                   "caption_question", "caption_call", "style_image", "style_image_sha256", "style_description",
                   "style_description_full",
                   "style_question", "style_call", "style_path", "ip_adapter", "ip_adapter_scale"),
                   # and generate's: restyle's `extra`
    ))
