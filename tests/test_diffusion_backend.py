"""The diffusion backend's knobs and failure paths: schedulers, safety checker and black-image
reporting, cancel, progress bars, out of memory, a dedicated inpainting checkpoint, LoRA."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from visionloop.errors import Cancelled, InputError, ModelError, VisionloopError
from visionloop.tools import ToolCall


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py: one intra-op thread


def make_backend(tiny_config, **changes):
    """A separate backend on the tiny model with some profile settings changed."""
    from visionloop.models.cache import ModelCache

    config = tiny_config.model_copy(deep=True)
    spec = config.profiles[config.profile].diffusion
    for key, value in changes.items():
        setattr(spec, key, value)
    return ModelCache(config).diffusion()


def gen(backend, mode="text2img", **kw):
    args = dict(prompt="a cat", negative_prompt=None, steps=2, guidance=7.5, seeds=[1], width=64, height=64)
    args.update(kw)
    return backend.generate(mode, **args)


# --- schedulers ------------------------------------------------------------------------------------

def test_scheduler_names():
    from visionloop.models.schedulers import SCHEDULERS, resolve_scheduler

    assert resolve_scheduler("DPM++ 2M Karras").cls == "DPMSolverMultistepScheduler"
    assert resolve_scheduler("dpmpp_2m_karras").options == {"use_karras_sigmas": True}
    assert resolve_scheduler("EulerAncestralDiscreteScheduler").name == "euler_a"  # a recorded class name
    assert resolve_scheduler("lcm").cls == "LCMScheduler"
    with pytest.raises(InputError, match="unknown scheduler 'warp'"):
        resolve_scheduler("warp")
    assert {"euler", "euler_a", "dpm++_2m", "ddim", "lcm"} <= set(SCHEDULERS)


def test_every_scheduler_builds_from_the_model_config(loop):
    import importlib.util

    from visionloop.models.schedulers import SCHEDULERS

    sd = loop.ctx.models.diffusion()
    for name, (cls, _) in SCHEDULERS.items():
        if name == "lms" and importlib.util.find_spec("scipy") is None:
            with pytest.raises(ModelError, match="scipy"):
                sd.scheduler(name)
            continue
        sched, choice = sd.scheduler(name)
        assert type(sched).__name__ == cls and choice.name == name
        assert sched.config.beta_schedule == "scaled_linear"  # the model's own schedule carried over
    default, choice = sd.scheduler(None)
    assert choice is None and type(default).__name__ == "PNDMScheduler"  # the model's own


def test_profile_scheduler_is_the_default(tiny_config, registry, tmp_path):
    from visionloop.context import Context
    from visionloop.tools import run_tool

    config = tiny_config.model_copy(deep=True)
    config.profiles[config.profile].diffusion.scheduler = "ddim"
    ctx = Context.create(config, tmp_path)
    (r,) = run_tool(registry.tool("draw"), {"prompt": "a cat", "seed": 1, "steps": 1}, ctx)
    assert r.ok and r.data["scheduler"] == "DDIMScheduler" and r.data["scheduler_name"] == "ddim"
    (r,) = run_tool(registry.tool("draw"), {"prompt": "a cat", "seed": 1, "steps": 1, "scheduler": "euler"}, ctx)
    assert r.data["scheduler"] == "EulerDiscreteScheduler"  # the call wins over the profile


# --- safety checker and black images ---------------------------------------------------------------

def fake_checker(flags=None, fill=None):
    """A safety checker that flags the images in order, `flags` across calls (one call per seed)."""
    pending = list(flags) if flags is not None else None

    def run_safety_checker(image, device, dtype):
        if fill is not None:
            image = image * 0 + fill
        if pending is None:
            return image, None
        return image, [pending.pop(0) for _ in range(len(image))]

    return run_safety_checker


def test_flagged_image_is_reported_not_saved(loop, monkeypatch):
    from visionloop.images import read_metadata

    sd = loop.ctx.models.diffusion()
    monkeypatch.setattr(sd.text2img, "run_safety_checker", fake_checker([True, False]))
    out_before = set(loop.ctx.out_dir.glob("*.png"))
    (r,) = loop.call(ToolCall("draw", {"prompt": "a cat", "seed": 3, "count": 2, "steps": 1}))
    assert r.ok
    assert r.data["nsfw_content_detected"] == [True, False] and r.data["status"] == ["nsfw", "ok"]
    assert len(r.images) == 1 and read_metadata(r.images[0])["visionloop"]["seed"] == 4  # only the good one
    assert any("flagged by the safety checker" in n and "seed 3" in n for n in r.data["notes"])
    assert set(loop.ctx.out_dir.glob("*.png")) - out_before == {Path(r.images[0])}


def test_all_flagged_is_an_error(loop, monkeypatch):
    sd = loop.ctx.models.diffusion()
    monkeypatch.setattr(sd.text2img, "run_safety_checker", fake_checker([True]))
    (r,) = loop.call(ToolCall("draw", {"prompt": "a cat", "seed": 3, "steps": 1}))
    assert not r.ok and "flagged by the safety checker" in r.error and "nothing was saved" in r.error


@pytest.mark.parametrize("fill, status", [(float("nan"), "nan"), (-1.0, "black")])
def test_nan_and_black_output_are_detected(loop, monkeypatch, fill, status):
    sd = loop.ctx.models.diffusion()
    monkeypatch.setattr(sd.text2img, "run_safety_checker", fake_checker(None, fill))
    g = gen(sd)
    assert g.status == [status]
    (r,) = loop.call(ToolCall("draw", {"prompt": "a cat", "seed": 3, "steps": 1}))
    assert not r.ok and "fp16 VAE" in r.error


def test_safety_checker_on_needs_a_model_that_has_one(tiny_config):
    with pytest.raises(ModelError, match="has no safety checker"):
        make_backend(tiny_config, safety_checker="on")
    assert make_backend(tiny_config, safety_checker="off").safety_checker is False


# --- cancel, progress, out of memory ---------------------------------------------------------------

def test_cancel_stops_at_the_next_step(loop):
    sd = loop.ctx.models.diffusion()
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        gen(sd, cancel=cancel)
    assert gen(sd, cancel=threading.Event()).status == ["ok"]  # still usable


def test_progress_bar_only_when_asked(loop, capsys):
    sd = loop.ctx.models.diffusion()
    gen(sd, steps=3, progress=False)
    assert "/3" not in capsys.readouterr().err
    gen(sd, steps=3, progress=True)
    # tqdm redraws at most every 0.1 s and the bar is cleared at the end, so the last frame
    # drawn may be any step: check that a bar for 3 steps was drawn at all
    assert "0/3 [" in capsys.readouterr().err


def test_count_runs_one_call_per_seed_with_a_bar_each_and_cancel_between_images(loop, monkeypatch, capsys):
    sd = loop.ctx.models.diffusion()
    pipe = sd.text2img
    calls = []
    cancel = threading.Event()
    real = type(pipe).__call__

    def counting(self, **kw):
        calls.append((kw.get("num_images_per_prompt", 1), kw["generator"].initial_seed()))
        return real(self, **kw)

    monkeypatch.setattr(type(pipe), "__call__", counting)
    g = gen(sd, seeds=[5, 6, 7], steps=2, progress=True)
    assert calls == [(1, 5), (1, 6), (1, 7)] and g.status == ["ok"] * 3 and len(g.images) == 3
    err = capsys.readouterr().err
    assert all(f"image {i}/3" in err for i in (1, 2, 3)), err
    # a cancel during the first image stops it; one set between images stops before the next
    calls.clear()

    def cancel_after_first(self, **kw):
        out = counting(self, **kw)
        cancel.set()
        return out

    monkeypatch.setattr(type(pipe), "__call__", cancel_after_first)
    with pytest.raises(Cancelled):
        gen(sd, seeds=[5, 6], cancel=cancel)
    assert calls == [(1, 5)]


def test_out_of_memory_becomes_a_message(loop, monkeypatch):
    import torch

    sd = loop.ctx.models.diffusion()

    class Exploding:
        scheduler = None

        def set_progress_bar_config(self, **kw):
            pass

        def __call__(self, **kw):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    with monkeypatch.context() as m:
        m.setattr(sd, "pipeline", lambda mode: Exploding())
        with pytest.raises(VisionloopError, match="out of GPU memory.*smaller size.*offload") as info:
            gen(sd)
        assert "\n" not in str(info.value)
    assert gen(sd).status == ["ok"]  # the process stays usable


# --- loading knobs ---------------------------------------------------------------------------------

def test_dedicated_inpaint_checkpoint_shares_text_encoder_and_vae(tiny_config):
    sd = make_backend(tiny_config, inpaint_model="tiny")
    inpaint = sd.inpaint
    assert inpaint.text_encoder is sd.text2img.text_encoder and inpaint.vae is sd.text2img.vae
    assert inpaint.tokenizer is sd.text2img.tokenizer
    assert inpaint.unet is not sd.text2img.unet  # its own UNet
    from PIL import Image

    g = gen(sd, "inpaint", image=Image.new("RGB", (64, 64), "gray"), mask=Image.new("L", (64, 64), 255),
            strength=1.0)
    assert g.status == ["ok"] and g.pipeline == "StableDiffusionInpaintPipeline"


def test_edit_records_the_dedicated_inpaint_checkpoint(tiny_config, registry, tmp_path, example_image):
    from visionloop.context import Context
    from visionloop.tools import run_tool

    config = tiny_config.model_copy(deep=True)
    config.profiles[config.profile].diffusion.inpaint_model = "tiny"
    ctx = Context.create(config, tmp_path)
    (r,) = run_tool(registry.tool("edit"), {"image": str(example_image), "prompt": "a boat", "box": "0,0,99,99",
                                            "seed": 1, "steps": 1}, ctx)
    assert r.ok, r.error
    sd = ctx.models.diffusion()
    assert r.data["model"] == sd.inpaint_source and r.data["base_model"] == sd.source
    assert ctx.models.loads["diffusion"] == 1


def test_memory_knobs_reach_the_pipeline(tiny_config, caplog):
    sd = make_backend(tiny_config, attention_slicing=True, vae_tiling=True, offload="model")
    assert sd.text2img.vae.use_tiling
    assert sd.offload == "none" and "ignored on the CPU" in caplog.text  # nothing to offload to
    assert gen(sd).status == ["ok"]
    assert sd.img2img.vae.use_tiling  # shared module, shared setting


def test_lora_without_peft_names_the_package(tiny_config, tmp_path, monkeypatch):
    """Runs whether peft is installed or not: peft is hidden from our check only (hiding it from
    the process would make diffusers, imported meanwhile, believe it absent for the session)."""
    import importlib.util
    from types import SimpleNamespace

    from visionloop.config import Lora
    from visionloop.models import diffusion

    def find_spec(name, *args):
        return None if name == "peft" else importlib.util.find_spec(name, *args)

    monkeypatch.setattr(diffusion, "importlib", SimpleNamespace(util=SimpleNamespace(find_spec=find_spec)))
    with pytest.raises(ModelError, match="pip install peft") as info:
        make_backend(tiny_config, loras=[Lora(path=str(tmp_path / "style.safetensors"), scale=0.5)])
    assert "\n" not in str(info.value)


@pytest.mark.needs("peft")  # conftest.py: skips without it, an error in CI
def test_lora_changes_the_output_with_its_scale(tiny_config, tmp_path):
    """A tiny LoRA made on the spot: loading it changes the picture, scale 0 gives the base."""
    import numpy as np
    import torch
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    from visionloop.config import Lora
    from visionloop.images import sha256_file
    from visionloop.models.tiny import tiny_model_path

    pipe = StableDiffusionPipeline.from_pretrained(tiny_model_path("sd", tiny_config.cache_path),
                                                   use_safetensors=True, local_files_only=True)
    torch.manual_seed(0)
    pipe.unet.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights="gaussian",
                                     target_modules=["to_k", "to_q", "to_v", "to_out.0"]))
    with torch.no_grad():  # peft starts B at zero (a no-op LoRA): give it weights
        for name, param in pipe.unet.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    StableDiffusionPipeline.save_lora_weights(
        save_directory=tmp_path / "lora", safe_serialization=True,
        unet_lora_layers=convert_state_dict_to_diffusers(get_peft_model_state_dict(pipe.unet)))
    file = next((tmp_path / "lora").glob("*.safetensors"))

    def picture(backend):
        return np.asarray(gen(backend).images[0])

    base = picture(make_backend(tiny_config))
    styled = make_backend(tiny_config, loras=[Lora(path=str(file), scale=1.0, name="style")])
    assert styled.loras == [{"path": str(file), "name": "style", "scale": 1.0, "sha256": sha256_file(file)}]
    assert not np.array_equal(picture(styled), base)
    assert styled.img2img.unet is styled.text2img.unet  # from_pipe shares the LoRA too
    off = make_backend(tiny_config, loras=[Lora(path=str(tmp_path / "lora"), scale=0.0)])  # a folder works too
    assert np.abs(picture(off).astype(int) - base.astype(int)).max() <= 1


def test_offline_default_profile_not_cached_is_exactly_one_line(tmp_path):
    """`HF_HUB_OFFLINE=1 visionloop draw x` on the default profile with an empty HF cache:
    one error line on stderr, no third-party warning before it."""
    import yaml

    from conftest import run_subprocess

    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"cache_dir": str(tmp_path / "cache"), "output": str(tmp_path / "out")}))
    res = run_subprocess("draw", "x", env={"VISIONLOOP_CONFIG": str(config), "HF_HUB_OFFLINE": "1",
                                           "HF_HOME": str(tmp_path / "hf"), "HF_HUB_CACHE": str(tmp_path / "hf" / "hub"),
                                           "PYTHONWARNINGS": "default"}, cwd=tmp_path)
    assert res.returncode == 1, res.stderr
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: ") and "not found in the local cache" in lines[0]
    assert "(offline mode)" in lines[0]
