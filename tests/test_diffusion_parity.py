"""The tools against raw diffusers: pixel parity from the recorded parameters, the PNG record
round trip, and one load of the weights for all three tools."""

from __future__ import annotations


import numpy as np
import pytest
from PIL import Image

from visionloop.tools import ToolCall
from json_lines import one


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py: one intra-op thread


def call(loop, tool, **args):
    (result,) = loop.call(ToolCall(tool, args))
    assert result.ok, result.error
    return result


def pixels(path_or_image) -> np.ndarray:
    img = path_or_image if isinstance(path_or_image, Image.Image) else Image.open(path_or_image)
    return np.asarray(img.convert("RGB"))


def raw_call(loop, pipe_class, data, **extra):
    """`_raw_call` on the loop's worker thread, where the tools run: torch's intra-op thread
    count is per thread, and a different count sums floats in another order (one grey level
    off, once the worker has run anything before this module set one thread)."""
    return loop.submit(lambda ctx: _raw_call(pipe_class, data, **extra)).result()


def _raw_call(pipe_class, data, **extra):
    """A plain diffusers pipeline, loaded on its own, called with nothing but the record."""
    import diffusers
    import torch

    # the dtype the tool recorded (dtype: auto is bf16 for drawing on a CPU with AMX/AVX512-BF16)
    pipe = getattr(diffusers, pipe_class).from_pretrained(data["model"], use_safetensors=True,
                                                          local_files_only=True,
                                                          torch_dtype=getattr(torch, data["dtype"]))
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = getattr(diffusers, data["scheduler"]).from_config(pipe.scheduler.config,
                                                                       **data["scheduler_options"])
    return pipe(prompt=data["prompt"], negative_prompt=data["negative_prompt"] or None,
                num_inference_steps=data["steps"], guidance_scale=data["guidance"],
                generator=torch.Generator("cpu").manual_seed(data["seed"]), **extra).images[0]


def resized_input(data):
    return Image.open(data["image"]).convert("RGB").resize((data["width"], data["height"]),
                                                           Image.Resampling.LANCZOS)


def test_draw_matches_raw_diffusers(loop):
    r = call(loop, "draw", prompt="a lighthouse at night", negative_prompt="fog", seed=1234, steps=3,
             guidance=6.0, scheduler="dpm++_2m_karras", size="64x48")
    assert r.data["scheduler_options"] == {"use_karras_sigmas": True}
    raw = raw_call(loop, "AutoPipelineForText2Image", r.data, width=r.data["width"], height=r.data["height"])
    assert np.array_equal(pixels(r.images[0]), pixels(raw))


def test_restyle_matches_raw_diffusers(loop, example_image):
    r = call(loop, "restyle", image=str(example_image), prompt="a lighthouse", style="pencil sketch",
             strength=0.7, seed=99, steps=4)
    raw = raw_call(loop, "AutoPipelineForImage2Image", r.data, image=resized_input(r.data), strength=r.data["strength"])
    assert np.array_equal(pixels(r.images[0]), pixels(raw))


def test_edit_matches_raw_diffusers(loop, example_image):
    r = call(loop, "edit", image=str(example_image), prompt="a red boat", box="32,32,160,128", seed=5,
             scheduler="euler_a", strength=0.9)
    d = r.data
    original = Image.open(d["image"]).convert("RGB")
    assert [d["width"], d["height"]] == d["input_size"] == list(original.size) and d["composited"] is True
    work_w, work_h = d["working_size"]
    init = original.resize((work_w, work_h), Image.Resampling.LANCZOS)
    mask = Image.new("L", original.size, 0)
    x0, y0, x1, y1 = d["box"]
    mask.paste(255, (x0, y0, x1, y1))
    small = mask.resize((work_w, work_h), Image.Resampling.NEAREST)
    # the raw pipeline at the working size, then the documented processing: lanczos upscale to
    # the input's size and a composite into the original through the full-size mask
    raw = raw_call(loop, "AutoPipelineForInpainting", d, image=init, mask_image=small, strength=d["strength"],
                   width=work_w, height=work_h)
    assert raw.size == (work_w, work_h)
    expected = Image.composite(raw.resize(original.size, Image.Resampling.LANCZOS), original, mask)
    ours = pixels(r.images[0])
    assert np.array_equal(ours, pixels(expected))
    inside = pixels(mask.convert("RGB"))[..., 0] >= 128
    assert np.array_equal(ours[~inside], pixels(original)[~inside])  # the rest: the input's, bit for bit


def test_png_record_round_trip(loop, cli):
    from visionloop.images import read_metadata

    r = call(loop, "draw", prompt="a tree, autumn", negative_prompt="people", seed=77, steps=2, guidance=5.5,
             scheduler="ddim")
    meta = read_metadata(r.images[0])
    record = meta["visionloop"]
    for key in ("model", "prompt", "negative_prompt", "steps", "guidance", "seed", "width", "height", "scheduler"):
        assert record[key] == r.data[key], key
    assert record["tool"] == "draw" and record["scheduler"] == "DDIMScheduler"
    params = meta["parameters"].splitlines()
    assert params[0] == "a tree, autumn"
    assert params[1] == "Negative prompt: people"
    assert params[2].startswith("Steps: 2, Sampler: DDIM, CFG scale: 5.5, Seed: 77, Size: 64x64")
    assert r.data["scheduler"] == "DDIMScheduler"  # data and the JSON chunk keep the diffusers class
    assert f"Model: {r.data['model']}" in params[2]
    res = cli("info", r.images[0])
    assert res.code == 0 and "Seed: 77" in res.out and "Negative prompt: people" in res.out
    res = cli("info", r.images[0], "--json")
    assert one(res.out)["visionloop"]["seed"] == 77


def test_replaying_a_record_through_the_tool_gives_the_same_pixels(loop):
    from visionloop.images import read_metadata

    first = call(loop, "draw", prompt="a bridge", steps=2, scheduler="euler_a")
    rec = read_metadata(first.images[0])["visionloop"]
    again = call(loop, "draw", prompt=rec["prompt"], seed=rec["seed"], steps=rec["steps"], guidance=rec["guidance"],
                 width=rec["width"], height=rec["height"], scheduler=rec["scheduler"])
    assert np.array_equal(pixels(first.images[0]), pixels(again.images[0]))


def test_one_load_for_draw_restyle_and_edit(tiny_config, registry, tmp_path, example_image):
    """A fresh process-like context: three tools, one load, one set of modules."""
    from visionloop.context import Context
    from visionloop.loop import Loop

    lp = Loop(registry, Context.create(tiny_config, tmp_path))
    try:
        call(lp, "draw", prompt="a cat", seed=1, steps=1)
        call(lp, "restyle", image=str(example_image), prompt="a cat", style="ink", seed=1, steps=2)
        call(lp, "edit", image=str(example_image), prompt="a cat", box="0,0,64,64", seed=1, steps=1)
        models = lp.ctx.models
        assert models.loads["diffusion"] == 1 and sum(models.loads.values()) == 1
        sd = models.diffusion()
        for name in ("unet", "vae", "text_encoder"):
            assert getattr(sd.img2img, name) is getattr(sd.text2img, name)
            assert getattr(sd.inpaint, name) is getattr(sd.text2img, name)
    finally:
        lp.close()


def test_every_image_of_a_count_batch_is_reproduced_by_its_own_seed(loop):
    """`draw P --count 2 --seed 10` then `draw P --seed 10` and `--seed 11`: bit for bit."""
    batch = call(loop, "draw", prompt="two cats", seed=10, count=2)
    assert batch.data["seeds"] == [10, 11] and len(batch.images) == 2
    for path, seed in zip(batch.images, (10, 11)):
        single = call(loop, "draw", prompt="two cats", seed=seed)
        assert single.data["seeds"] == [seed]
        assert np.array_equal(pixels(path), pixels(single.images[0])), seed


def test_each_image_of_a_count_batch_matches_raw_diffusers_with_its_seed(loop):
    from visionloop.images import read_metadata

    r = call(loop, "draw", prompt="a lighthouse", seed=40, count=2, steps=2, scheduler="euler")
    for path in r.images:
        record = read_metadata(path)["visionloop"]  # the image's own record, nothing else
        raw = raw_call(loop, "AutoPipelineForText2Image", record, width=record["width"], height=record["height"])
        assert np.array_equal(pixels(path), pixels(raw)), record["seed"]
