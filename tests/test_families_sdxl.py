"""SDXL, from a tiny folder saved with `save_pretrained` and named as the profile's
`diffusion.model`: draw, edit and restyle through the tools, parity with a raw diffusers call,
the native size from the model's config, the family in data, PNG records and manifests, and the
refiner as draw's optional second stage."""

from __future__ import annotations

import numpy as np
import pytest
from family_helpers import make_ctx, pixels, raw_pipe, run_step

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py: one intra-op thread


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    from visionloop.models.tiny_families import build_family

    root = tmp_path_factory.mktemp("sdxl")
    return {name: build_family(name, root / name) for name in ("sdxl", "sdxl-refiner")}


@pytest.fixture(scope="module")
def ctx(tiny_config, folders, tmp_path_factory):
    return make_ctx(tiny_config, folders["sdxl"], tmp_path_factory.mktemp("sdxl-out"))


def run(ctx, registry, tool, **args):
    return run_step(ctx, registry, tool, 3, **args)


def test_sdxl_draws_like_raw_diffusers_and_records_its_family(ctx, registry):
    import torch
    from visionloop.images import read_metadata

    r = run(ctx, registry, "draw", prompt="a red boat", negative_prompt="fog", guidance=5.0)
    d = r.data
    assert d["family"] == "sdxl" and d["pipeline"] == "StableDiffusionXLPipeline"
    assert d["text_encoders"] == ["text_encoder", "text_encoder_2"] and d["refiner"] is None
    assert ctx.models.diffusion().default_size == (64, 64)  # UNet sample size x VAE scale, from the config
    pipe = raw_pipe("StableDiffusionXLPipeline", d)
    raw = pipe(prompt=d["prompt"], negative_prompt=d["negative_prompt"], num_inference_steps=d["steps"],
               guidance_scale=d["guidance"], width=d["width"], height=d["height"],
               generator=torch.Generator("cpu").manual_seed(d["seed"])).images[0]
    assert np.array_equal(pixels(r.images[0]), pixels(raw))
    record = read_metadata(r.images[0])["visionloop"]
    assert record["family"] == "sdxl" and record["pipeline"] == "StableDiffusionXLPipeline"
    models = ctx.models.describe()["models"]["diffusion"]
    assert models["family"] == "sdxl" and models["pipeline"] == "StableDiffusionXLPipeline"


def test_sdxl_edit_and_restyle_use_the_sdxl_pipelines_on_shared_modules(ctx, registry, example_image):
    edit = run(ctx, registry, "edit", image=str(example_image), prompt="a boat", box="10,10,90,90", size="64x64")
    restyle = run(ctx, registry, "restyle", image=str(example_image), prompt="a lighthouse", style="ink",
                  size="64x64", strength=0.8)
    assert edit.data["pipeline"] == "StableDiffusionXLInpaintPipeline" and edit.data["family"] == "sdxl"
    assert restyle.data["pipeline"] == "StableDiffusionXLImg2ImgPipeline" and restyle.data["family"] == "sdxl"
    sd = ctx.models.diffusion()
    assert sd.img2img.unet is sd.text2img.unet is sd.inpaint.unet and ctx.models.loads["diffusion"] == 1


def test_sdxl_refiner_is_a_second_stage_of_draw_like_raw_diffusers(tiny_config, folders, registry, tmp_path):
    import torch

    ctx = make_ctx(tiny_config, folders["sdxl"], tmp_path, refiner=str(folders["sdxl-refiner"]), refiner_start=0.5)
    r = run(ctx, registry, "draw", prompt="a red boat", steps=4)
    d = r.data
    assert d["refiner"] == {"model": str(folders["sdxl-refiner"]), "start": 0.5}
    sd = ctx.models.diffusion()
    assert sd.refiner.vae is sd.text2img.vae and sd.refiner.text_encoder_2 is sd.text2img.text_encoder_2
    base = raw_pipe("StableDiffusionXLPipeline", d)
    refiner = raw_pipe("StableDiffusionXLImg2ImgPipeline", {**d, "model": d["refiner"]["model"]})
    generator = torch.Generator("cpu").manual_seed(d["seed"])
    common = {"prompt": d["prompt"], "num_inference_steps": d["steps"], "guidance_scale": d["guidance"]}
    latents = base(**common, width=64, height=64, denoising_end=0.5, output_type="latent", generator=generator).images
    raw = refiner(**common, image=latents, denoising_start=0.5, generator=generator).images[0]
    assert np.array_equal(pixels(r.images[0]), pixels(raw))
    plain = run(make_ctx(tiny_config, folders["sdxl"], tmp_path / "plain"), registry, "draw", prompt="a red boat",
                steps=4)
    assert not np.array_equal(pixels(plain.images[0]), pixels(r.images[0]))  # the refiner did something


def test_a_refiner_on_another_family_is_one_line(tiny_config, folders, tmp_path):
    from visionloop.errors import ModelError

    ctx = make_ctx(tiny_config, "tiny", tmp_path, refiner=str(folders["sdxl-refiner"]))
    with pytest.raises(ModelError, match=r"refiner is an SDXL second stage, and this model is sd \(check") as info:
        ctx.models.diffusion()
    assert "\n" not in str(info.value)
