"""Stable Diffusion 3 and FLUX.1 (flow matching, a transformer instead of a UNet), each from a
tiny folder saved with `save_pretrained` and named as the profile's `diffusion.model`: draw,
edit and restyle through the tools (the bug was `'StableDiffusion3Pipeline' object has no
attribute 'unet'`), parity with a raw diffusers call, schedulers that fit the family and a clear
error for those that do not, SD3 without T5 (`text_encoder_3: null`), FLUX's ignored negative
prompt, and LoRA on the transformer."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from visionloop.errors import InputError, ModelError
from family_helpers import make_ctx, pixels, raw_pipe, run_step
from visionloop.tools import run_tool

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py: one intra-op thread


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    from visionloop.models.tiny_families import build_family

    root = tmp_path_factory.mktemp("flow")
    return {name: build_family(name, root / name) for name in ("sd3", "flux")}


@pytest.fixture(scope="module")
def contexts(tiny_config, folders, tmp_path_factory):
    return {name: make_ctx(tiny_config, folder, tmp_path_factory.mktemp(name)) for name, folder in folders.items()}


def run(ctx, registry, tool, **args):
    return run_step(ctx, registry, tool, 11, **args)


PIPELINES = {"sd3": ("StableDiffusion3Pipeline", "StableDiffusion3Img2ImgPipeline", "StableDiffusion3InpaintPipeline"),
             "flux": ("FluxPipeline", "FluxImg2ImgPipeline", "FluxInpaintPipeline")}


@pytest.mark.parametrize("family", ["sd3", "flux"])
def test_every_tool_runs_on_the_family_with_its_own_pipelines(family, contexts, registry, example_image):
    ctx = contexts[family]
    draw = run(ctx, registry, "draw", prompt="a red boat")
    restyle = run(ctx, registry, "restyle", image=str(example_image), prompt="a lighthouse", style="ink",
                  size="64x64", strength=0.8)
    edit = run(ctx, registry, "edit", image=str(example_image), prompt="a cat", box="20,20,120,100", size="64x64")
    assert [r.data["pipeline"] for r in (draw, restyle, edit)] == list(PIPELINES[family])
    assert {r.data["family"] for r in (draw, restyle, edit)} == {family}
    assert draw.data["scheduler"] == "FlowMatchEulerDiscreteScheduler"
    assert Image.open(restyle.images[0]).size == (64, 64)  # FLUX img2img is told the size, not its 1024 default
    sd = ctx.models.diffusion()
    assert sd.img2img.transformer is sd.text2img.transformer is sd.inpaint.transformer
    assert ctx.models.loads["diffusion"] == 1 and ctx.models.describe()["models"]["diffusion"]["family"] == family


def test_sd3_restyle_matches_raw_diffusers(contexts, registry, example_image):
    import torch

    r = run(contexts["sd3"], registry, "restyle", image=str(example_image), prompt="a lighthouse", style="pencil",
            size="64x48", strength=0.7, negative_prompt="fog", guidance=4.0)
    d = r.data
    assert d["text_encoders"] == ["text_encoder", "text_encoder_2", "text_encoder_3"]
    init = Image.open(d["image"]).convert("RGB").resize((d["width"], d["height"]), Image.Resampling.LANCZOS)
    raw = raw_pipe("StableDiffusion3Img2ImgPipeline", d)(
        prompt=d["prompt"], negative_prompt=d["negative_prompt"], image=init, strength=d["strength"],
        num_inference_steps=d["steps"], guidance_scale=d["guidance"], width=d["width"], height=d["height"],
        generator=torch.Generator("cpu").manual_seed(d["seed"])).images[0]
    assert np.array_equal(pixels(r.images[0]), pixels(raw))


def test_flux_edit_matches_raw_diffusers(contexts, registry, example_image):
    import torch

    r = run(contexts["flux"], registry, "edit", image=str(example_image), prompt="a red boat", box="32,32,160,128",
            size="64x64", strength=0.9)
    d = r.data
    original = Image.open(d["image"]).convert("RGB")
    work_w, work_h = d["working_size"]
    mask = Image.new("L", original.size, 0)
    mask.paste(255, tuple(d["box"]))
    raw = raw_pipe("FluxInpaintPipeline", d)(
        prompt=d["prompt"], image=original.resize((work_w, work_h), Image.Resampling.LANCZOS),
        mask_image=mask.resize((work_w, work_h), Image.Resampling.NEAREST), strength=d["strength"],
        width=work_w, height=work_h, num_inference_steps=d["steps"], guidance_scale=d["guidance"],
        generator=torch.Generator("cpu").manual_seed(d["seed"])).images[0]
    expected = Image.composite(raw.resize(original.size, Image.Resampling.LANCZOS), original, mask)
    assert np.array_equal(pixels(r.images[0]), pixels(expected))


def test_flow_schedulers_fit_and_others_are_refused_in_one_line(contexts, registry, loop):
    sd3 = run(contexts["sd3"], registry, "draw", prompt="a cat", scheduler="flow_heun")
    assert sd3.data["scheduler"] == "FlowMatchHeunDiscreteScheduler" and sd3.data["scheduler_name"] == "flow_heun"
    with pytest.raises(InputError, match=r"scheduler: euler_a does not fit sd3 models \(flow matching\); "
                                         r"use one of: flow_euler, flow_heun") as info:
        contexts["sd3"].models.diffusion().scheduler("euler_a")
    assert "\n" not in str(info.value)
    (refused,) = run_tool(registry.tool("draw"), {"prompt": "a cat", "steps": 2, "scheduler": "flow_heun"},
                          contexts["flux"])
    assert not refused.ok and "flow_heun does not fit flux models" in refused.error and "flow_euler" in refused.error
    with pytest.raises(InputError, match="flow_euler does not fit sd models .*euler_a"):
        loop.ctx.models.diffusion().scheduler("flow_euler")  # nor a flow scheduler on SD 1.5


def test_flux_says_it_ignores_a_negative_prompt(contexts, registry):
    r = run(contexts["flux"], registry, "draw", prompt="a cat", negative_prompt="dogs")
    assert any("ignores negative prompts" in note for note in r.data["notes"])


def test_sd3_without_t5(tiny_config, folders, registry, tmp_path):
    ctx = make_ctx(tiny_config, folders["sd3"], tmp_path, text_encoder_3=None)
    r = run(ctx, registry, "draw", prompt="a red boat")
    assert r.data["text_encoders"] == ["text_encoder", "text_encoder_2"]
    assert ctx.models.diffusion().text2img.text_encoder_3 is None
    other = make_ctx(tiny_config, folders["flux"], tmp_path / "flux", text_encoder_3=None)
    with pytest.raises(ModelError, match=r"text_encoder_3: null is for Stable Diffusion 3 models, and this is flux"):
        other.models.diffusion()


@pytest.mark.needs("peft")  # conftest.py: skips without it, an error in CI
def test_a_lora_on_the_sd3_transformer_changes_the_picture(contexts, registry, folders, tmp_path):
    import torch
    from diffusers import StableDiffusion3Pipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    pipe = StableDiffusion3Pipeline.from_pretrained(folders["sd3"], use_safetensors=True, local_files_only=True)
    torch.manual_seed(0)
    pipe.transformer.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights="gaussian",
                                            target_modules=["to_k", "to_q", "to_v", "to_out.0"]))
    with torch.no_grad():  # peft starts B at zero (a no-op LoRA): give it weights
        for name, param in pipe.transformer.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    StableDiffusion3Pipeline.save_lora_weights(tmp_path / "lora", safe_serialization=True,
                                               transformer_lora_layers=get_peft_model_state_dict(pipe.transformer))
    file = next((tmp_path / "lora").glob("*.safetensors"))
    ctx = contexts["sd3"]
    base = run(ctx, registry, "draw", prompt="a cat")
    styled = run(ctx, registry, "draw", prompt="a cat", lora=[f"{file}:1.0"])
    assert styled.data["loras"][0]["scale"] == 1.0
    assert not np.array_equal(pixels(styled.images[0]), pixels(base.images[0]))
    again = run(ctx, registry, "draw", prompt="a cat")  # a call without --lora draws the base again
    assert np.array_equal(pixels(again.images[0]), pixels(base.images[0]))
