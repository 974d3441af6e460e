"""draw, edit and restyle end to end on the tiny profile: results, records and files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visionloop.tools import ToolCall

SHARED_NAMES = {"image", "prompt", "negative_prompt", "width", "height", "size", "steps", "guidance", "seed",
                "scheduler", "strength", "mask", "box", "style", "count", "lora",
                "where", "threshold", "grow", "feather", "save_mask", "style_image", "style_strength"}
RECORD_KEYS = {"model", "prompt", "negative_prompt", "steps", "guidance", "seed", "width", "height", "scheduler"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py: one intra-op thread


def call(loop, tool, **args):
    results = loop.call(ToolCall(tool, args))
    assert len(results) == 1
    return results[0]


def test_inputs_use_the_shared_names(registry):
    for name in ("draw", "edit", "restyle"):
        names = {i.name for i in registry.tool(name).inputs}
        assert names <= SHARED_NAMES, names - SHARED_NAMES
    assert registry.tool("draw").input("prompt").positional
    assert "--negative" in registry.tool("draw").input("negative_prompt").flags


def test_draw_end_to_end(loop):
    r = call(loop, "draw", prompt="a red lighthouse", negative_prompt="blurry", seed=11, count=2,
             scheduler="euler")
    assert r.ok, r.error
    assert RECORD_KEYS <= set(r.data)
    assert r.data["seeds"] == [11, 12] and r.data["scheduler"] == "EulerDiscreteScheduler"
    assert (r.data["width"], r.data["height"], r.data["steps"]) == (64, 64, 4)  # the tiny profile's
    assert len(r.images) == 2 and r.data["images"] == r.images
    for path in r.images:
        assert Path(path).resolve().parent == loop.ctx.out_dir.resolve()
        assert Image.open(path).size == (64, 64)
    a, b = (np.asarray(Image.open(p)) for p in r.images)
    assert not np.array_equal(a, b)  # two seeds, two pictures


def test_a_prompt_longer_than_the_text_encoder_reads_gets_a_note(loop):
    short = call(loop, "draw", prompt="a red lighthouse", seed=1)
    assert not any("tokens" in n for n in short.data["notes"])
    long = call(loop, "draw", prompt=" ".join(["lighthouse"] * 120), seed=1)
    assert long.ok, long.error
    (note,) = [n for n in long.data["notes"] if "tokens" in n]
    assert note.startswith("prompt is ") and "reads the first 77" in note


def test_draw_without_seed_draws_and_records_one(loop):
    r1 = call(loop, "draw", prompt="a cat", size="64x32")
    r2 = call(loop, "draw", prompt="a cat", size="64x32")
    assert r1.ok and r2.ok
    assert isinstance(r1.data["seed"], int) and r1.data["seed"] != r2.data["seed"]
    assert Image.open(r1.images[0]).size == (64, 32)
    again = call(loop, "draw", prompt="a cat", size="64x32", seed=r1.data["seed"])
    assert np.array_equal(np.asarray(Image.open(again.images[0])), np.asarray(Image.open(r1.images[0])))


def test_restyle_with_prompt(loop, example_image):
    r = call(loop, "restyle", image=str(example_image), prompt="a lighthouse", style="a watercolour painting",
             strength="0.5", seed=3)
    assert r.ok, r.error
    assert r.data["prompt"] == "a lighthouse, a watercolour painting"
    assert r.data["strength"] == 0.5 and "caption" not in r.data
    # the example is 256x192: fitted to the profile's 64 px, aspect kept, multiples of 8
    assert (r.data["width"], r.data["height"]) == (64, 48)
    assert Image.open(r.images[0]).size == (64, 48)
    # smaller than the input is fine for a redraw, but said
    assert any("working size 64x48" in n and "256x192" in n for n in r.data["notes"]), r.data["notes"]


def test_restyle_at_the_input_size_has_no_size_note(loop, tmp_path):
    Image.new("RGB", (64, 48), (200, 120, 40)).save(tmp_path / "small.png")
    r = call(loop, "restyle", image=str(tmp_path / "small.png"), prompt="a field", style="ink", seed=1, steps=2)
    assert r.ok, r.error
    assert Image.open(r.images[0]).size == (64, 48)
    assert not any("working size" in n for n in r.data["notes"])


def test_restyle_without_prompt_asks_llava(loop, example_image):
    from visionloop.toolkit.diffusion import clean_prompt

    r = call(loop, "restyle", image=str(example_image), style="oil painting", seed=5)
    assert r.ok, r.error
    caption = call(loop, "caption", image=[str(example_image)])  # the same question, greedy
    full = clean_prompt(caption.text)[:300].split()
    assert r.data["caption_full"].split() == full
    used = r.data["caption"].split()
    assert used and used == full[:len(used)]  # LLaVA's words, cut at a word boundary if at all
    expected = f"{r.data['caption']}, oil painting" if r.data["caption"] else "oil painting"
    assert r.data["prompt"] == expected
    assert r.data["caption_model"] == caption.data["model"]
    # the style always survives the text encoder's limit: the description is what gets shortened
    tokenizer = loop.ctx.models.diffusion().pipeline("img2img").tokenizer
    assert len(tokenizer(r.data["prompt"]).input_ids) <= tokenizer.model_max_length
    assert not any("the rest was ignored" in n for n in r.data["notes"])
    if len(used) < len(full):
        assert any(f"shortened by {len(full) - len(used)} words" in n for n in r.data["notes"])


def test_restyle_records_the_caption_call_and_it_replays_with_raw_transformers(loop, example_image):
    import torch

    from visionloop.toolkit.diffusion import clean_prompt
    from visionloop.images import read_metadata
    from visionloop_plugins.restyle import DESCRIBE

    r = call(loop, "restyle", image=str(example_image), style="ink", seed=6, steps=2)
    assert r.ok, r.error
    rec = r.data["caption_call"]
    assert rec["model"] == r.data["caption_model"] and rec["question"] == DESCRIBE
    assert DESCRIBE in rec["prompt"] and rec["prompt"] != DESCRIBE  # chat-templated, not the bare question
    assert rec["do_sample"] is False and isinstance(rec["max_new_tokens"], int)  # the profile is greedy
    assert "temperature" not in rec and "top_p" not in rec and "seed" not in rec  # only set ones recorded
    assert read_metadata(r.images[0])["visionloop"]["caption_call"] == rec  # in each image's record too
    # replay from the record alone: the same weights, called the plain transformers way
    llava = loop.ctx.models.llava()
    inputs = llava.processor(images=[Image.open(example_image).convert("RGB")], text=rec["prompt"],
                             return_tensors="pt")
    with torch.inference_mode():
        out = llava.model.generate(**inputs, max_new_tokens=rec["max_new_tokens"], do_sample=rec["do_sample"])
    raw = llava.processor.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()
    assert r.data["caption_full"] == clean_prompt(raw)[:300]
    assert r.data["caption_full"].startswith(r.data["caption"])  # what the prompt used


def test_edit_box_keeps_the_rest(loop, example_image):
    r = call(loop, "edit", image=str(example_image), prompt="a boat", box="64,64,192,160", seed=2)
    assert r.ok, r.error
    picture = Image.open(r.images[0])
    # the full input size comes back (the pipeline ran at the profile's working size)
    assert picture.size == (256, 192) and (r.data["width"], r.data["height"]) == (256, 192)
    assert r.data["working_size"] == [64, 48] and r.data["composited"] is True
    assert any("working size 64x48" in n for n in r.data["notes"])
    out = np.asarray(picture.convert("RGB")).astype(int)
    init = np.asarray(Image.open(example_image).convert("RGB")).astype(int)
    inside = np.zeros(out.shape[:2], bool)
    inside[64:160, 64:192] = True  # the box, at full size
    assert np.array_equal(out[~inside], init[~inside])  # bit-identical outside the mask
    assert np.abs(out[inside] - init[inside]).mean() > 5  # the region was repainted


def test_edit_mask_of_another_size_is_resized_with_a_note(loop, example_image, tmp_path):
    mask = Image.new("L", (32, 24), 0)
    mask.paste(255, (8, 8, 24, 16))
    mask.save(tmp_path / "mask.png")
    r = call(loop, "edit", image=str(example_image), prompt="a boat", mask=str(tmp_path / "mask.png"), seed=2,
             strength=0.8)
    assert r.ok, r.error
    assert any("resized" in n for n in r.data["notes"])
    assert r.data["mask"] == str(tmp_path / "mask.png") and r.data["strength"] == 0.8


def test_edit_mask_with_transparency_is_read_by_its_alpha_with_a_note(loop, example_image, tmp_path):
    # painted in opaque black on a transparent white layer: by brightness this would keep the
    # painted region and repaint everything else; by alpha (the inpainting-UI convention) the reverse
    mask = Image.new("RGBA", (256, 192), (255, 255, 255, 0))
    mask.paste((0, 0, 0, 255), (64, 64, 192, 160))
    mask.save(tmp_path / "alpha.png")
    r = call(loop, "edit", image=str(example_image), prompt="a boat", mask=str(tmp_path / "alpha.png"), seed=2)
    assert r.ok, r.error
    assert r.data["mask_channel"] == "alpha"
    assert any("alpha channel was used" in n and "alpha.png" in n for n in r.data["notes"]), r.data["notes"]
    out = np.asarray(Image.open(r.images[0]).convert("RGB")).astype(int)
    init = np.asarray(Image.open(example_image).convert("RGB")).astype(int)
    inside = np.zeros(out.shape[:2], bool)
    inside[64:160, 64:192] = True  # the painted (opaque) region
    assert np.array_equal(out[~inside], init[~inside])  # transparent = kept, bit for bit
    assert np.abs(out[inside] - init[inside]).mean() > 5  # painted = repainted


def test_edit_mask_fully_transparent_is_nothing_to_repaint(loop, example_image, tmp_path):
    Image.new("RGBA", (256, 192), (255, 255, 255, 0)).save(tmp_path / "clear.png")  # white, but invisible
    r = call(loop, "edit", image=str(example_image), prompt="a boat", mask=str(tmp_path / "clear.png"), seed=2)
    assert not r.ok and "fully transparent" in r.error and "nothing to repaint" in r.error


def test_opaque_masks_are_read_by_brightness_without_a_note():
    from visionloop_plugins.edit import mask_channel

    notes = []
    rgba = Image.new("RGBA", (8, 8), (0, 0, 0, 255))
    rgba.paste((255, 255, 255, 255), (0, 0, 4, 8))
    region, channel = mask_channel(rgba, "m.png", notes)
    assert channel == "luminance" and notes == []
    assert region.getpixel((1, 1)) == 255 and region.getpixel((6, 1)) == 0
    half = rgba.copy()
    half.putalpha(200)  # not fully opaque: alpha decides
    region, channel = mask_channel(half, "m.png", notes)
    assert channel == "alpha" and region.getpixel((6, 1)) == 200 and len(notes) == 1


# --- CLI ---------------------------------------------------------------------------------------------
