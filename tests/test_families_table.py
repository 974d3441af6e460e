"""The family table (agent/models/families.py) on its own: which family a pipeline class is,
sizes from the config, a capability a family lacks as one line (never an AttributeError), the
IP-Adapter and LoRA answers, and the README's model table naming what the tests run."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from visionloop.errors import InputError
from visionloop.models.families import FAMILIES, family_of, native_size, size_multiple
from visionloop.tools import run_tool

README = Path(__file__).resolve().parent.parent / "README.md"


def fake_pipe(cls_name: str, **parts):
    """An object of class `cls_name` with the given components (no weights)."""
    return type(cls_name, (), {})() if not parts else type(cls_name, (), parts)()


@pytest.mark.parametrize("cls_name,family", [
    ("StableDiffusionPipeline", "sd"), ("StableDiffusionInpaintPipeline", "sd"),
    ("StableDiffusionXLPipeline", "sdxl"), ("StableDiffusionXLImg2ImgPipeline", "sdxl"),
    ("StableDiffusionXLControlNetPipeline", "sdxl"), ("StableDiffusion3Pipeline", "sd3"),
    ("StableDiffusion3InpaintPipeline", "sd3"), ("FluxPipeline", "flux"), ("FluxImg2ImgPipeline", "flux"),
])
def test_the_pipeline_class_names_the_family(cls_name, family):
    assert family_of(fake_pipe(cls_name)).name == family


def test_sizes_come_from_the_config():
    def config(**kw):
        return SimpleNamespace(config=SimpleNamespace(**kw))

    sd15 = fake_pipe("StableDiffusionPipeline", unet=config(sample_size=64), vae_scale_factor=8)
    sdxl = fake_pipe("StableDiffusionXLPipeline", unet=config(sample_size=128), vae_scale_factor=8,
                     default_sample_size=128)
    sd3 = fake_pipe("StableDiffusion3Pipeline", transformer=config(sample_size=128, patch_size=2),
                    vae_scale_factor=8, default_sample_size=128)
    flux = fake_pipe("FluxPipeline", transformer=config(patch_size=1), vae_scale_factor=8, default_sample_size=128)
    assert [native_size(p) for p in (sd15, sdxl, sd3, flux)] == [512, 1024, 1024, 1024]
    assert [size_multiple(p) for p in (sd15, sdxl, sd3, flux)] == [8, 8, 16, 16]


def test_a_family_without_a_pipeline_is_one_line():
    pixart = fake_pipe("PixArtSigmaPipeline", transformer=object(), scheduler=object())
    family = family_of(pixart)
    assert family.name == "PixArtSigmaPipeline" and family.denoiser == "transformer"
    assert family.img2img is None and family.inpaint is None  # diffusers has text-to-image only
    with pytest.raises(InputError, match="^edit is not available for PixArtSigmaPipeline: diffusers has no "
                                         "inpainting pipeline for it"):
        family.require("inpaint", "edit")
    kolors = family_of(fake_pipe("KolorsPipeline", unet=object()))
    assert (kolors.denoiser, kolors.img2img, kolors.inpaint) == ("unet", "KolorsImg2ImgPipeline", None)
    kolors.require("img2img", "restyle")  # it has one
    with pytest.raises(InputError, match="^edit is not available for KolorsPipeline"):
        kolors.require("inpaint", "edit")


def test_edit_on_a_family_without_inpainting_is_an_error_result(tiny_config, registry, tmp_path, example_image):
    from visionloop.context import Context

    ctx = Context.create(tiny_config, tmp_path)
    sd = ctx.models.diffusion()
    sd.family = dataclasses.replace(sd.family, name="sd-no-inpaint", inpaint=None, img2img=None)
    (r,) = run_tool(registry.tool("edit"), {"image": str(example_image), "prompt": "a boat", "box": "0,0,50,50",
                                            "seed": 1, "steps": 1}, ctx)
    assert not r.ok and r.error.startswith("edit is not available for sd-no-inpaint: diffusers has no inpainting")
    assert "\n" not in r.error and "AttributeError" not in r.error
    (r,) = run_tool(registry.tool("restyle"), {"image": str(example_image), "prompt": "a boat", "style": "ink",
                                               "seed": 1, "steps": 2}, ctx)
    assert not r.ok and r.error.startswith("restyle is not available for sd-no-inpaint")


def test_ip_adapter_and_lora_answers():
    by_name = {f.name: f for f in FAMILIES}
    for name in ("sd", "sdxl"):
        by_name[name].require("ip_adapter", "--ip-adapter")  # no error
    for name in ("sd3", "flux"):
        with pytest.raises(InputError, match=f"^--ip-adapter is not available for {name}: the project loads"):
            by_name[name].require("ip_adapter", "--ip-adapter")
    for family in FAMILIES:
        family.require("lora", "--lora")  # every family here loads LoRAs (the SD3 one is tested)
    with pytest.raises(InputError, match="refiner is not available for sd3"):
        by_name["sd3"].require("refiner", "refiner")


def test_the_readme_table_names_the_tested_families():
    from visionloop.models.tiny_families import BUILDERS

    section = README.read_text().split("### Model families", 1)[1].split("\n#", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line][1:]
    ids = {hub for row in rows for hub in re.findall(r"`([\w.-]+/[\w.-]+)`", row)}
    assert {f.example for f in FAMILIES} <= ids
    assert {"llava-hf/llava-1.5-7b-hf", "llava-hf/llava-v1.6-mistral-7b-hf", "llava-hf/llava-v1.6-34b-hf"} <= ids
    tested = {row.split("|")[1].strip() for row in rows if "tiny" in row.split("|")[-2]}
    assert tested == {"LLaVA 1.5", "LLaVA-NeXT (v1.6)", "SD 1.x/2.x", "SDXL", "SD 3/3.5", "FLUX.1"}
    assert {"llava-next", "sdxl", "sdxl-refiner", "sd3", "flux"} <= set(BUILDERS)


def test_sizes_follow_the_family_multiple(tiny_config, registry, tmp_path, example_image, monkeypatch):
    """SD3 and FLUX sizes divide by 16: an edit's working size is fitted to it, another is refused."""
    from visionloop.context import Context
    from visionloop.models import diffusion

    monkeypatch.setattr(diffusion, "size_multiple", lambda pipe: 16)  # the real tiny models divide by 8
    config = tiny_config.model_copy(deep=True)
    config.profiles[config.profile].diffusion.width = 100  # longest side 100: a 4:3 input fits 96x72 by 8s
    ctx = Context.create(config, tmp_path)
    sd = ctx.models.diffusion()
    with pytest.raises(InputError, match="^width: sd models need a multiple of 16, got 72$"):
        sd.generate("text2img", prompt="a cat", negative_prompt=None, steps=1, guidance=1.0, seeds=[1],
                    width=72, height=64)
    picture = tmp_path / "wide.png"
    from PIL import Image

    Image.open(example_image).convert("RGB").resize((400, 300)).save(picture)
    (r,) = run_tool(registry.tool("edit"), {"image": str(picture), "prompt": "a boat", "box": "0,0,50,50",
                                            "seed": 1, "steps": 1}, ctx)
    assert r.ok, r.error
    assert r.data["working_size"] == [96, 64]  # 100 x 75 -> multiples of 16, not 96 x 72


def test_taesd_follows_the_family_latent_space():
    from visionloop.errors import ModelError
    from visionloop.models.speed import _family_taesd

    def backend(cls_name, **parts):
        return SimpleNamespace(text2img=fake_pipe(cls_name, **parts), where=lambda key: f"profiles.x.{key}")

    assert [_family_taesd(backend(c)) for c in ("StableDiffusionPipeline", "StableDiffusionXLPipeline",
                                                "StableDiffusion3Pipeline", "FluxPipeline")] == [
        "madebyollin/taesd", "madebyollin/taesdxl", "madebyollin/taesd3", "madebyollin/taef1"]
    with pytest.raises(ModelError, match="^diffusion.vae: taesd: there is no tiny autoencoder for PixArtSigmaPipeline"):
        _family_taesd(backend("PixArtSigmaPipeline", transformer=object()))
