"""`restyle --style-image` on the tiny profile (tiny LLaVA, tiny SD, tiny IP-Adapter): the
reference's style in words and as an image prompt. Scale 0 is the plain output bit for bit, a
different reference changes the output, the adapter is on the shared UNet (from_pipe keeps
it, unloading restores the plain output), a workflow with a style image replays identically,
a profile without an adapter says it used words only, and bad inputs are one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from json_lines import one
from PIL import Image
from visionloop.tools import ToolCall

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def call(loop, tool, **args):
    results = loop.call(ToolCall(tool, args))
    assert len(results) == 1
    return results[0]


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.fixture(scope="module")
def references(tmp_path_factory) -> tuple[Path, Path]:
    """Two style pictures: warm stripes and a cool gradient."""
    folder = tmp_path_factory.mktemp("refs")
    stripes = np.zeros((64, 64, 3), np.uint8)
    stripes[::8] = (230, 120, 20)
    ramp = np.linspace(0, 255, 64, dtype=np.uint8)
    gradient = np.stack([np.tile(ramp, (64, 1)) // 4, np.tile(ramp[:, None], (1, 64)), np.full((64, 64), 200,
                                                                                                np.uint8)], -1)
    paths = folder / "stripes.png", folder / "gradient.png"
    Image.fromarray(stripes).save(paths[0])
    Image.fromarray(gradient).save(paths[1])
    return paths


def test_style_image_records_words_reference_and_adapter(loop, example_image, references):
    r = call(loop, "restyle", image=str(example_image), style_image=str(references[0]), style="oil paint", seed=4)
    assert r.ok, r.error
    d = r.data
    assert d["style_image"] == str(references[0]) and len(d["style_image_sha256"]) == 64
    assert d["style_description"] and d["style_description"] in d["prompt"] and "oil paint" in d["prompt"]
    assert d["style_path"] == "text+image" and d["ip_adapter_scale"] == 0.6
    assert d["ip_adapter"]["model"] == "tiny" and d["ip_adapter"]["weight"] == "ip-adapter_sd15.safetensors"
    assert d["style_call"]["question"] == d["style_question"]
    assert loop.ctx.models.loads["ip_adapter"] == 1


def test_scale_zero_is_the_plain_output_bit_for_bit(loop, example_image, references):
    styled = call(loop, "restyle", image=str(example_image), style_image=str(references[0]), style_strength=0.0,
                  seed=5)
    plain = call(loop, "restyle", image=str(example_image), prompt=styled.data["prompt"], seed=5)
    assert styled.ok and plain.ok, (styled.error, plain.error)
    assert plain.data["prompt"] == styled.data["prompt"]
    assert np.array_equal(pixels(styled.images[0]), pixels(plain.images[0]))
    full = call(loop, "restyle", image=str(example_image), style_image=str(references[0]), style_strength=1.0,
                seed=5)
    assert not np.array_equal(pixels(full.images[0]), pixels(plain.images[0]))


def _img2img(backend, init, extra=None):
    gen = backend.generate("img2img", prompt="a lighthouse", negative_prompt=None, steps=4, guidance=7.5, seeds=[7],
                           width=64, height=48, image=init, strength=0.8, extra_kwargs=extra)
    return np.asarray(gen.images[0])


def test_the_adapter_is_on_the_shared_unet_and_comes_off_cleanly(loop, example_image, references):
    from diffusers import AutoPipelineForImage2Image
    from diffusers.models.attention_processor import IPAdapterAttnProcessor2_0
    from visionloop.models.ip_adapter import attached, guided

    backend, adapter = loop.ctx.models.diffusion(), loop.ctx.models.ip_adapter()
    init = Image.open(example_image).convert("RGB").resize((64, 48))
    before = _img2img(backend, init)
    a, b = (adapter.embeds(Image.open(p).convert("RGB"), guided(backend.img2img, 7.5)) for p in references)
    with attached(backend, adapter, 1.0):
        with_a = _img2img(backend, init, {"ip_adapter_image_embeds": a})
        with_b = _img2img(backend, init, {"ip_adapter_image_embeds": b})
        fresh = AutoPipelineForImage2Image.from_pipe(backend.text2img)  # a pipeline made now has it too
        assert fresh.unet is backend.text2img.unet is backend.img2img.unet
        assert any(isinstance(p, IPAdapterAttnProcessor2_0) for p in fresh.unet.attn_processors.values())
    assert not np.array_equal(with_a, with_b)  # another reference, another picture
    assert not np.array_equal(with_a, before)
    after = _img2img(backend, init)
    assert np.array_equal(after, before)  # unloaded: exactly the plain output again
    assert not any(isinstance(p, IPAdapterAttnProcessor2_0) for p in backend.text2img.unet.attn_processors.values())


def test_a_workflow_with_a_style_image_and_where_replays_identically(cli, example_image, references, tmp_path):
    flow = tmp_path / "style-from-picture.yaml"
    flow.write_text(yaml.safe_dump({
        "name": "style-from-picture", "description": "restyle a photo like a picture, and mask its sky",
        "inputs": {"image": {"type": "image"}, "ref": {"type": "image"}},
        "steps": [{"id": "redraw", "tool": "restyle",
                   "with": {"image": "${inputs.image}", "style_image": "${inputs.ref}", "style_strength": 0.8,
                            "seed": 9}},
                  {"id": "sky", "tool": "segment", "with": {"image": "${inputs.image}", "where": ["the sky"]}}],
        "outputs": {"picture": "${steps.redraw.image}", "mask": "${steps.sky.image}",
                    "style": "${steps.redraw.data.style_description}"}}, sort_keys=False))
    first = cli("run", flow, "--input", f"image={example_image}", "--input", f"ref={references[1]}",
                "--out", tmp_path / "runs", "--json")
    assert first.code == 0, first.err
    manifest = Path(one(first.out)["manifest"])
    step = json.loads(manifest.read_text())["steps"][0]
    assert step["args"]["style_image"] == str(references[1])
    again = cli("replay", manifest, "--out", tmp_path / "again", "--json")
    assert again.code == 0, again.err
    report = one(again.out)
    assert report["identical"] and report["differences"] == [], report


def test_without_an_adapter_the_words_alone_carry_the_style(cli, example_image, references, tiny_cache, tmp_path):
    config = tmp_path / "plain.yaml"
    config.write_text(yaml.safe_dump({"profile": "plain", "cache_dir": str(tiny_cache), "output": str(tmp_path),
                                      "profiles": {"plain": {"vision": {"model": "tiny", "max_new_tokens": 12},
                                                             "diffusion": {"model": "tiny", "steps": 2,
                                                                           "width": 64, "height": 64}}}}))
    result = cli("--config", config, "restyle", example_image, "--style-image", references[0], "--seed", "1",
                 "--json")
    assert result.code == 0, result.err
    data = one(result.out)["data"]
    assert data["style_path"] == "text" and data["ip_adapter"] is None and data["style_description"]
    assert any("no IP-Adapter in the profile" in n for n in data["notes"])


@pytest.mark.parametrize("extra, message", [
    (["--style-image", "nosuch.jpg"], "nosuch.jpg: file not found"),
    (["--style-image", "{junk}"], "not a supported image (detected: text; supported: PNG, JPEG, WebP, BMP, GIF, TIFF)"),
    (["--style-image", "{img}", "--style-strength", "2"], "style_strength: must be at most 1, got 2"),
])
def test_bad_style_inputs_are_one_line(cli, example_image, tmp_path, extra, message):
    junk = tmp_path / "junk.jpg"
    junk.write_text("not a picture")
    args = [a.replace("{junk}", str(junk)).replace("{img}", str(example_image)) for a in extra]
    result = cli("restyle", example_image, *args)
    assert result.code != 0 and "Traceback" not in result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and lines[0].endswith(message), result.err


def test_with_attention_slicing_the_adapter_comes_off_and_slicing_stays(example_image, references, tiny_cache,
                                                                         tmp_path):
    """The loader rebuilds other attention processors by class, which a sliced one cannot be:
    the restyle works, and the next draw is the one before it, sliced as the profile asks."""
    from visionloop.config import load_config
    from visionloop.context import Context
    from visionloop.loop import Loop
    from visionloop.plugins import load_registry

    config = tmp_path / "sliced.yaml"
    config.write_text(yaml.safe_dump({"profile": "sliced", "cache_dir": str(tiny_cache), "profiles": {"sliced": {
        "vision": {"model": "tiny", "max_new_tokens": 8}, "segmenter": {"model": "tiny"},
        "diffusion": {"model": "tiny", "steps": 2, "width": 64, "height": 64, "attention_slicing": True,
                      "ip_adapter": {"model": "tiny"}}}}}))
    loop = Loop(load_registry(), Context.create(load_config(str(config)), tmp_path / "out"))
    try:
        before = call(loop, "draw", prompt="a boat", seed=1)
        styled = call(loop, "restyle", image=str(example_image), style_image=str(references[0]), seed=2)
        after = call(loop, "draw", prompt="a boat", seed=1)
        assert before.ok and styled.ok and after.ok, (before.error, styled.error, after.error)
        assert styled.data["style_path"] == "text+image"
        assert np.array_equal(pixels(before.images[0]), pixels(after.images[0]))
        procs = loop.ctx.models.diffusion().text2img.unet.attn_processors.values()
        assert all(type(p).__name__ == "SlicedAttnProcessor" for p in procs)
    finally:
        loop.close()


LONG_PHOTO = ("a tall white lighthouse with a red top stands on dark rocks at the edge of a calm blue sea "
              "under a pale sky with a few clouds")
LONG_STYLE = ("an oil painting on coarse canvas with thick impasto brushwork, a warm ochre and burnt sienna "
              "palette, soft golden evening light, visible knife marks, nineteenth century "
              "post-impressionist era")  # under MAX_STYLE_CHARS


def test_a_long_style_description_leaves_the_photo_its_share(loop, example_image, references, monkeypatch):
    """Both of LLaVA's descriptions are cut, the longer first: the photo keeps about half of the
    tokens, the user's --style words are all there, and the note counts what each lost."""
    from types import SimpleNamespace

    from visionloop.toolkit import vision
    from visionloop_plugins.restyle import DESCRIBE

    def fake(ctx, tool, images, question, **kwargs):
        return SimpleNamespace(text=LONG_PHOTO if question == DESCRIBE else LONG_STYLE, data={"model": "fake"})

    monkeypatch.setattr(vision, "ask_llava", fake)
    r = call(loop, "restyle", image=str(example_image), style_image=str(references[0]), style="oil paint", seed=4)
    assert r.ok, r.error
    d = r.data
    tokenizer = loop.ctx.models.diffusion().pipeline("img2img").tokenizer
    size = lambda text: len(tokenizer(text, add_special_tokens=False).input_ids)
    assert len(tokenizer(d["prompt"]).input_ids) <= tokenizer.model_max_length
    assert d["caption_full"] == LONG_PHOTO and LONG_PHOTO.startswith(d["caption"]) and d["caption"]
    assert d["style_description_full"] == LONG_STYLE and LONG_STYLE.startswith(d["style_description"])
    assert d["prompt"] == f"{d['caption']}, oil paint, {d['style_description']}"
    assert size(d["caption"]) >= 0.4 * (size(d["caption"]) + size(d["style_description"]))
    dropped_photo = len(LONG_PHOTO.split()) - len(d["caption"].split())
    dropped_style = len(LONG_STYLE.split()) - len(d["style_description"].split())
    assert dropped_photo > 0 and dropped_style > 0
    note = next(n for n in d["notes"] if "shortened" in n)
    assert f"the photo's description shortened by {dropped_photo} words (of {len(LONG_PHOTO.split())})" in note
    assert (f"the style picture's description shortened by {dropped_style} words (of {len(LONG_STYLE.split())})"
            in note)
    assert "your --style words were kept" in note


def test_style_strength_without_a_style_image_says_so(loop, example_image):
    r = call(loop, "restyle", image=str(example_image), prompt="a lighthouse", style="oil paint",
             style_strength=0.3, seed=1)
    assert r.ok, r.error
    assert any("--style-strength has no effect without --style-image" in n for n in r.data["notes"])


def test_an_adapter_of_another_family_is_one_line(loop):
    """An adapter whose weights are shaped for another UNet (SD 1.5's on SDXL): one line naming
    the adapter and the family, and the UNet is left without it."""
    from types import SimpleNamespace

    import torch
    from visionloop.errors import ModelError
    from visionloop.models.ip_adapter import attached, loaded

    backend, adapter = loop.ctx.models.diffusion(), loop.ctx.models.ip_adapter()
    state = {part: {name: (torch.zeros(t.shape[0], t.shape[1] * 2) if "to_k_ip" in name else t)
                    for name, t in weights.items()} for part, weights in adapter.state.items()}
    other = SimpleNamespace(state=state, source=adapter.source, spec=adapter.spec)
    with pytest.raises(ModelError) as caught, attached(backend, other, 1.0):
        pass
    message = str(caught.value)
    assert "\n" not in message and "github.com" not in message and "expected shape" not in message
    assert message.startswith("models/ip-adapter_sd15.safetensors: this IP-Adapter does not fit tiny, a sd model")
    assert not loaded(backend.text2img)
