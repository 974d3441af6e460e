"""`edit`: repaint a region of an image (inpainting). White in the mask (or the box) is
repainted; everything else is kept, pixel for pixel. The region may also be found by words
(`--where "the sky"`, CLIPSeg: `visionloop.toolkit.regions`), grown and feathered so the repaint
blends; with a mask or box too, the region is what lies in both. A mask with transparency is read by its
alpha channel instead (painted = repaint), with a note. The result has the input's full size:
the pipeline runs at the working size (`working_size`: the profile's, or --size), and its
picture is upscaled and composited into the original (`composited: true`)."""

from visionloop.errors import InputError
from visionloop.hookspecs import hookimpl
from visionloop.images import save_image
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
from visionloop.toolkit.regions import (
    check_region_settings,
    find_region,
    region_inputs,
    where_words,
)
from visionloop.tools import Input, Tool


def mask_channel(rgba, mask, notes) -> tuple:
    """The mask as one channel. A mask with transparency is read by its alpha, as inpainting
    UIs paint them: painted (opaque) = repaint, transparent = keep, whatever the colour (its
    RGB under a transparent pixel is often black or arbitrary). An opaque mask is read by its
    brightness: white = repaint, black = keep. Returns the channel and which one was read."""
    alpha = rgba.getchannel("A")
    if alpha.getextrema()[0] == 255:  # fully opaque (or no alpha at all): the brightness
        return rgba.convert("L"), "luminance"
    notes.append(f"{mask}: the mask has transparency, so its alpha channel was used "
                 "(opaque = repaint, transparent = keep)")
    return alpha, "alpha"


def region_mask(ctx, picture, mask, box, notes):
    """The repaint mask at the picture's size and where it came from (`alpha`, `luminance` or
    `box`): from a mask file (of the picture's aspect ratio, within a pixel of rounding; resized
    with a note when its size differs) or from a box
    `x0,y0,x1,y1` (x1, y1 exclusive) that must lie inside."""
    from PIL import Image, ImageDraw

    if mask is None and box is None:
        raise InputError("edit needs a region to repaint: --mask, --box or --where")
    if mask is not None and box is not None:
        raise InputError("edit takes --mask or --box, not both")
    w, h = picture.size
    if mask is not None:
        region, channel = mask_channel(ctx.load_image(mask, mode="RGBA"), mask, notes)
        mw, mh = region.size
        if (mw, mh) != (w, h):
            # a mask saved at another scale is fine; another shape would be stretched over the wrong pixels
            if abs(mh - mw * h / w) > 1 and abs(mw - mh * w / h) > 1:
                raise InputError(f"{mask}: the mask is {mw}x{mh} but the image is {w}x{h}; a mask needs "
                                 "the image's size or at least its aspect ratio")
            notes.append(f"mask {mw}x{mh} resized to the image's {w}x{h}")
            region = region.resize(picture.size, Image.Resampling.NEAREST)
        return region, channel
    x0, y0, x1, y1 = box
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        raise InputError(f"box: {x0},{y0},{x1},{y1} is not inside the {w}x{h} image "
                         "(need 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height)")
    region = Image.new("L", picture.size, 0)
    ImageDraw.Draw(region).rectangle((x0, y0, x1 - 1, y1 - 1), fill=255)
    return region, "box"


def edit(ctx, image, prompt, mask=None, box=None, strength=1.0, negative_prompt=None, width=None, height=None,
         size=None, steps=None, guidance=None, seed=None, scheduler=None, count=1, lora=None, where=None,
         threshold=0.4, grow=8, feather=4, save_mask=False):
    from PIL import Image

    # 1. Check inputs: prompt, settings, image, mask or box, size, seeds.
    prompt = clean_prompt(prompt)
    if not prompt:  # only control characters: nothing to paint
        raise InputError("prompt: must not be empty")
    negative_prompt = clean_prompt(negative_prompt, "negative_prompt")
    steps, guidance = check_settings(ctx, steps, guidance, strength)
    words = where_words(where)
    if words:
        check_region_settings(threshold, grow, feather)
    picture = ctx.load_image(image)
    notes: list[str] = []
    region = channel = found = None
    if mask is not None or box is not None or not words:
        region, channel = region_mask(ctx, picture, mask, box, notes)
        if not region.getbbox():
            what = "fully transparent" if channel == "alpha" else "all black"
            raise InputError(f"{mask or 'box'}: the mask is {what}, so there is nothing to repaint")
    width, height = pick_size(ctx, width, height, size, fit=picture.size)
    if words:  # the words' region, inside the mask or box when one was given too
        found = find_region(ctx, picture, words, threshold, grow, feather, str(image), within=region)
        region, channel = found.hard, ("words" if channel is None else f"words+{channel}")
        notes.extend(found.notes)
    seeds = pick_seeds(seed, count)
    loras = pick_loras(lora)
    # 2. The exact pixels the pipeline gets, at the working size (recorded as working_size and resize).
    init = picture.resize((width, height), Image.Resampling.LANCZOS)
    small = region.resize((width, height), Image.Resampling.NEAREST)
    keep = region.point(lambda v: 255 if v >= 128 else 0)  # the pipeline binarizes at 0.5 too
    if found is not None:
        keep = found.soft  # feathered: the repaint fades into the kept pixels

    # 3. Inpaint at the working size, then bring the result back to the input: the generated
    #    picture is upscaled (lanczos) to the input's size and composited into the original
    #    through the full-size mask, so only the masked region changes and every other pixel is
    #    the input's own (the VAE would blur them, and the working size would lose detail).
    def finish(generated):
        if generated.size != picture.size:
            generated = generated.resize(picture.size, Image.Resampling.LANCZOS)
        return Image.composite(generated, picture, keep)

    if (width, height) != picture.size:
        notes.append(f"repainted at the working size {width}x{height}, upscaled to the input's "
                     f"{picture.width}x{picture.height} inside the mask")
    extra = {"image": str(image), "input_size": list(picture.size), "resize": "lanczos",
             "working_size": [width, height], "width": picture.width, "height": picture.height,
             "upscale": "lanczos", "composited": True,
             "mask": str(mask) if mask is not None else None, "box": list(box) if box is not None else None,
             "mask_channel": channel,
             "unmasked": "the input's own pixels", "notes": notes, **(found.record if found else {})}
    result = generate(ctx, "edit", "inpaint", prompt=prompt, negative_prompt=negative_prompt, steps=steps,
                      guidance=guidance, seeds=seeds, width=width, height=height, scheduler=scheduler,
                      image=init, mask=small, strength=strength, extra=extra, finish=finish, loras=loras)
    if save_mask:  # beside the result: what was repainted (feathered where words found it)
        record = {"tool": "edit", "mask_of": result.images, **{k: extra[k] for k in ("image", "mask", "box")},
                  **(found.record if found else {})}
        result.data["mask_file"] = str(save_image(keep, ctx.out_dir, f"edit-mask-{prompt[:40]}", record))
    return result


@hookimpl
def register_tools(register):
    register(Tool(
        name="edit",
        description="Repaint the masked region of an image from a prompt (inpainting); the rest is kept.",
        inputs=[Input("image", "image", help="the image to edit", required=True, positional=True),
                Input("prompt", "text", help="what to paint in the region", required=True, max_chars=MAX_PROMPT_CHARS),
                Input("mask", "image", None, "mask image of the image's size or aspect ratio: white = repaint, "
                      "black = keep; a mask with "
                      "transparency is read by its alpha: painted (opaque) = repaint, transparent = keep; "
                      "with --where, the region is what lies in both"),
                Input("box", "box", None, "region to repaint instead of a mask: x0,y0,x1,y1 in pixels "
                      "(x1, y1 exclusive); with --where, the region is what lies in both, and nothing "
                      "outside the box or mask changes"),
                *region_inputs(),
                Input("save_mask", "bool", False, "also save the mask that was repainted, in the output "
                      "folder beside the result (edit-mask-*.png; its path is data.mask_file)"),
                *common_inputs(strength=1.0)],
        run=edit,
        returns_images=True,
        data_keys=(*DATA_KEYS, "image", "input_size", "resize", "working_size", "upscale", "composited", "mask",
                   "box", "mask_channel", "unmasked", "where", "threshold", "grow", "feather", "covered",
                   "covered_grown", "covered_by_words", "segmenter", "segmenter_source", "mask_file"),
                   # and generate's: edit's `extra`
    ))
