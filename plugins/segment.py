"""`segment`: where words are in a picture, as a mask image (white = the thing, black = the
rest; a feathered edge in between), at the picture's own size. The same mask `edit --where`
repaints, for workflows and plugins that want it alone (`${steps.ID.image}`)."""

from visionloop.errors import InputError
from visionloop.hookspecs import hookimpl
from visionloop.images import ensure_output_dir, save_image
from visionloop.toolkit.regions import (
    check_region_settings,
    find_region,
    region_inputs,
    where_words,
)
from visionloop.tools import Input, Tool, ToolResult


def segment(ctx, image, where=None, threshold=0.4, grow=0, feather=0):
    # 1. Check inputs before any model loads.
    words = where_words(where)
    if not words:
        raise InputError("segment needs --where: what to find, e.g. --where 'the sky'")
    check_region_settings(threshold, grow, feather)
    picture = ctx.load_image(image)
    ensure_output_dir(ctx.out_dir)
    # 2. Words -> mask, saved with its record.
    # a mask of nearly everything may be the right answer here (edit refuses it: a full repaint)
    region = find_region(ctx, picture, words, threshold, grow, feather, str(image), refuse_full=False)
    data = {"image": str(image), "width": picture.width, "height": picture.height, **region.record,
            "device": ctx.models.segmenter().device, "notes": region.notes}
    stem = f"segment-{'-'.join(words)[:40]}"
    path = str(save_image(region.soft, ctx.out_dir, stem, {"tool": "segment", **data}))
    data["images"] = [path]
    text = f"{', '.join(words)}: {region.record['covered']:.0%} of the picture"
    return ToolResult(tool="segment", text=text, images=[path], data=data)


@hookimpl
def register_tools(register):
    register(Tool(
        name="segment",
        description="Find things in a picture by words (CLIPSeg) and return the mask: white = found; "
                    "it is written to the output folder (segment-<words>.png; its path is data.images).",
        inputs=[Input("image", "image", help="the picture to search", required=True, positional=True),
                *region_inputs(grow=0, feather=0, required=True)],
        run=segment,
        returns_images=True,
        data_keys=("image", "width", "height", "where", "threshold", "grow", "feather", "covered", "covered_grown",
                   "covered_by_words", "segmenter", "segmenter_source", "device", "notes", "images"),
    ))
