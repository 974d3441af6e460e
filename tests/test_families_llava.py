"""LLaVA-NeXT (v1.6) from a tiny folder saved with `save_pretrained` and named as the profile's
`vision.model`: caption and see (two images of different shapes in one prompt) through the
tools, parity with raw transformers, and prompt tokens counted from the processor (anyres
tiles: the count depends on each image's size, which the chat's trimming relies on)."""

from __future__ import annotations

import pytest
from PIL import Image
from visionloop.tools import run_tool

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py: one intra-op thread


@pytest.fixture(scope="module")
def ctx(tiny_config, tmp_path_factory):
    from visionloop.context import Context
    from visionloop.models.tiny_families import build_family

    folder = build_family("llava-next", tmp_path_factory.mktemp("next") / "llava-next")
    config = tiny_config.model_copy(deep=True)
    vision = config.profiles[config.profile].vision
    vision.model = str(folder)
    if "quantize" in type(vision).model_fields:  # parity with raw fp32 transformers: no int8 on the CPU
        vision.quantize = "none"
    return Context.create(config, tmp_path_factory.mktemp("next-out"))


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    path = tmp_path_factory.mktemp("wide") / "wide.png"
    Image.new("RGB", (120, 60), (0, 90, 200)).save(path)
    return path


def run(ctx, registry, tool, **args):
    (result,) = run_tool(registry.tool(tool), args, ctx)
    assert result.ok, result.error
    return result


def raw(source: str, image_paths, prompt: str, max_new_tokens: int, dtype: str) -> tuple[str, int]:
    """Plain transformers on the same folder, images, prompt and settings: the answer and the
    prompt's length in tokens."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(source)
    model = AutoModelForImageTextToText.from_pretrained(source, dtype=getattr(torch, dtype)).eval()
    inputs = processor(images=[Image.open(p).convert("RGB") for p in image_paths], text=prompt, return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    length = inputs["input_ids"].shape[1]
    return processor.decode(out[0, length:], skip_special_tokens=True).strip(), length


def test_caption_on_llava_next_matches_raw_transformers(ctx, registry, example_image):
    r = run(ctx, registry, "caption", image=str(example_image))
    assert type(ctx.models.llava().model).__name__ == "LlavaNextForConditionalGeneration"
    assert r.data["dtype"] == "float32"
    text, length = raw(r.data["model"], [example_image], r.data["prompt"], r.data["max_new_tokens"], r.data["dtype"])
    assert r.text == text and r.text
    assert r.data["prompt_tokens"] == length


def test_see_two_images_counts_their_tiles_from_the_processor(ctx, registry, example_image, wide):
    r = run(ctx, registry, "see", image=[str(example_image), str(wide)], question="which is bluer?")
    d = r.data
    assert d["prompt"].count("<image>") == 2
    text, length = raw(d["model"], [example_image, wide], d["prompt"], d["max_new_tokens"], d["dtype"])
    assert r.text == text
    assert d["prompt_tokens"] == length  # what the model really gets: anyres tiles included
    llava = ctx.models.llava()
    one = llava.image_tokens([Image.open(example_image)])
    assert d["image_tokens"] == one + llava.image_tokens([Image.open(wide)])
    assert llava.image_tokens([Image.new("RGB", (30, 90))]) != llava.image_tokens([Image.new("RGB", (64, 64))])
    assert one > 16  # more than LLaVA-1.5's fixed 16 of the tiny model: the base image plus tiles
