"""Regions by words on the tiny profile: the `segment` tool's mask (deterministic, the photo's
size, threshold/grow/feather, refusals), parity with a raw CLIPSeg call, and `edit --where`
(inside the mask changes, far outside does not; --box intersects, several --where unite)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter
from visionloop.tools import ToolCall

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def call(loop, tool, **args):
    results = loop.call(ToolCall(tool, args))
    assert len(results) == 1
    return results[0]


def mask_of(result) -> np.ndarray:
    return np.asarray(Image.open(result.images[0]).convert("L"))


def test_mask_is_deterministic_at_the_photo_size(loop, example_image):
    a = call(loop, "segment", image=str(example_image), where=["the sky"])
    b = call(loop, "segment", image=str(example_image), where=["the sky"])
    assert a.ok and b.ok, (a.error, b.error)
    assert Image.open(a.images[0]).size == Image.open(example_image).size
    assert np.array_equal(mask_of(a), mask_of(b))
    assert 0 < a.data["covered"] < 0.98 and a.data["where"] == ["the sky"] and a.data["threshold"] == 0.4
    assert a.data["segmenter"] == "tiny" and set(np.unique(mask_of(a))) == {0, 255}  # no grow/feather: hard
    assert loop.ctx.models.loads["segmenter"] == 1  # loaded once, shared


def test_threshold_grow_and_feather_shape_the_mask(loop, example_image):
    image = str(example_image)
    low, mid, high = (call(loop, "segment", image=image, where=["the sky"], threshold=t) for t in (0.3, 0.4, 0.6))
    assert low.data["covered"] > mid.data["covered"] > high.data["covered"] > 0
    assert np.all(mask_of(low)[mask_of(mid) == 255] == 255)  # a lower threshold only adds
    grown = call(loop, "segment", image=image, where=["the sky"], grow=6)
    plain = mask_of(mid) == 255
    assert np.all(mask_of(grown)[plain] == 255) and (mask_of(grown) == 255).sum() > plain.sum()
    assert grown.data["covered_grown"] > grown.data["covered"] == mid.data["covered"]
    feathered = mask_of(call(loop, "segment", image=image, where=["the sky"], feather=4))
    soft = (feathered > 0) & (feathered < 255)
    assert soft.any() and np.all(feathered[plain] == 255)  # softened outwards only


def test_an_empty_mask_is_refused_and_a_full_one_only_by_edit(loop, example_image, tmp_path):
    nothing = call(loop, "segment", image=str(example_image), where=["the sky"], threshold=0.999)
    assert not nothing.ok
    assert nothing.error == (f"no 'sky' found in {example_image}: try other words or a lower --threshold")
    plain = tmp_path / "plain.png"
    Image.new("RGB", (96, 64), (200, 30, 30)).save(plain)  # the tiny segmenter finds "it" everywhere
    everything = call(loop, "edit", image=str(plain), prompt="a door", where=["a red wall"])
    assert not everything.ok and "almost the whole picture" in everything.error and str(plain) in everything.error
    mask = call(loop, "segment", image=str(plain), where=["a red wall"])  # for segment, a possible answer
    assert mask.ok, mask.error
    assert mask.data["covered"] > 0.98 and (mask_of(mask) == 255).mean() > 0.98
    assert any("almost all of it" in n for n in mask.data["notes"])


def test_segment_matches_a_raw_clipseg_call(loop, example_image):
    """The same inputs through transformers alone: sigmoid of the logits, bilinear to the
    photo's size, at the threshold. The mask must be the same, pixel for pixel."""
    import torch
    from transformers import AutoProcessor, CLIPSegForImageSegmentation

    source = loop.ctx.models.segmenter().source
    processor = AutoProcessor.from_pretrained(source)
    model = CLIPSegForImageSegmentation.from_pretrained(source).eval()
    photo = Image.open(example_image).convert("RGB")
    inputs = processor(text=["the sky"], images=[photo], padding=True, return_tensors="pt")
    with torch.inference_mode():
        logits = model(**inputs).logits.reshape(1, 1, *model(**inputs).logits.shape[-2:])
    probs = torch.nn.functional.interpolate(torch.sigmoid(logits), size=photo.size[::-1], mode="bilinear",
                                            align_corners=False)[0, 0].numpy()
    raw = np.where(probs >= 0.4, 255, 0).astype(np.uint8)
    ours = call(loop, "segment", image=str(example_image), where=["the sky"], threshold=0.4)
    assert np.array_equal(mask_of(ours), raw)


def test_edit_where_changes_inside_and_keeps_far_outside(loop, example_image):
    r = call(loop, "edit", image=str(example_image), prompt="a sunset", where=["the sky"], seed=3,
             save_mask=True)
    assert r.ok, r.error
    assert r.data["where"] == ["the sky"] and r.data["mask_channel"] == "words" and 0 < r.data["covered"] < 0.98
    before = np.asarray(Image.open(example_image).convert("RGB")).astype(int)
    after = np.asarray(Image.open(r.images[0]).convert("RGB")).astype(int)
    mask = np.asarray(Image.open(r.data["mask_file"]).convert("L"))
    assert mask.shape == before.shape[:2]
    inside = mask == 255
    near = Image.fromarray(((mask > 0) * 255).astype(np.uint8)).filter(ImageFilter.MaxFilter(9))
    far = np.asarray(near) == 0
    assert inside.sum() > 100 and far.sum() > 100
    assert np.abs(after - before)[inside].mean() > 5  # repainted
    assert np.abs(after - before)[far].max() <= 1  # the input's own pixels


def test_where_intersects_a_box_and_several_where_unite(loop, example_image):
    image = str(example_image)
    sky = call(loop, "segment", image=image, where=["the sky"])
    union = call(loop, "segment", image=image, where=["the sky", "the sea"])
    sea = call(loop, "segment", image=image, where=["the sea"])
    assert np.array_equal(mask_of(union), np.maximum(mask_of(sky), mask_of(sea)))
    boxed = call(loop, "edit", image=image, prompt="a sunset", where=["the sky"], box="0,0,128,96", seed=3,
                 grow=0, feather=0, save_mask=True)
    assert boxed.ok, boxed.error
    mask = np.asarray(Image.open(boxed.data["mask_file"]).convert("L")) == 255
    assert mask.any() and not mask[96:, :].any() and not mask[:, 128:].any()
    assert np.array_equal(mask[:96, :128], mask_of(sky)[:96, :128] == 255)
    assert boxed.data["mask_channel"] == "words+box"


@pytest.mark.parametrize("args, message", [
    (["segment", "{img}", "--where", "  "], "error: where: must not be empty"),
    (["edit", "{img}", "--prompt", "x", "--where", " "], "error: where: must not be empty"),
    *[([tool, "{img}", *extra, "--where", "sky", "--threshold", t],
       f"threshold: must be between 0 and 1 (not 0 or 1 themselves), got {t}")
      for tool, extra in (("segment", []), ("edit", ["--prompt", "x"])) for t in ("0", "1", "1.5")],
    (["segment", "nosuch.png", "--where", "sky"], "nosuch.png: file not found"),
])
def test_bad_region_inputs_are_one_line(cli, example_image, args, message):
    result = cli(*[a.replace("{img}", str(example_image)) for a in args])
    assert result.code != 0 and "Traceback" not in result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and lines[0].endswith(message), result.err


def _changed(before_path, after_path) -> np.ndarray:
    before = np.asarray(Image.open(before_path).convert("RGB")).astype(int)
    after = np.asarray(Image.open(after_path).convert("RGB")).astype(int)
    return np.abs(after - before).max(axis=2) > 0


def test_a_box_or_mask_with_where_is_a_hard_limit(loop, example_image, tmp_path):
    """Growing and feathering the words' region must not spill out of the box or mask."""
    image = str(example_image)
    boxed = call(loop, "edit", image=image, prompt="a sunset", where=["the sky"], box="24,16,128,96", seed=8,
                 grow=8, feather=4, save_mask=True)
    assert boxed.ok, boxed.error
    outside = np.ones(Image.open(example_image).size[::-1], bool)
    outside[16:96, 24:128] = False
    changed = _changed(example_image, boxed.images[0])
    assert changed[~outside].sum() > 100 and not changed[outside].any()
    assert not np.asarray(Image.open(boxed.data["mask_file"]).convert("L"))[outside].any()
    mask_file = tmp_path / "hard.png"
    hard = np.zeros(outside.shape, np.uint8)
    hard[10:80, 40:150] = 255
    Image.fromarray(hard).save(mask_file)
    masked = call(loop, "edit", image=image, prompt="a sunset", where=["the sky"], mask=str(mask_file), seed=8)
    assert masked.ok, masked.error
    changed = _changed(example_image, masked.images[0])
    assert changed[hard == 255].sum() > 100 and not changed[hard == 0].any()


def test_long_where_words_are_cut_to_what_the_segmenter_reads(loop, example_image):
    words = "the sky" + " a" * 138  # 140 words, 283 characters: more tokens than CLIPSeg's 77 positions
    r = call(loop, "segment", image=str(example_image), where=[words])
    assert r.ok, r.error
    assert r.data["where"] == [words] and r.data["covered"] > 0
    assert any("tokens the segmenter reads" in n for n in r.data["notes"]), r.data["notes"]


def test_help_says_where_masks_go_and_how_regions_combine(cli):
    edit_help = " ".join(cli("edit", "--help").out.split())
    assert "the region is what lies in both" in edit_help and "data.mask_file" in edit_help
    assert "output folder" in edit_help
    segment_help = " ".join(cli("segment", "--help").out.split())
    assert "output folder" in segment_help and "data.images" in segment_help
    restyle_help = " ".join(cli("restyle", "--help").out.split())
    assert "needs --style-image and an IP-Adapter in the profile" in restyle_help
