"""Issue 15, drawing side: `dtype: auto` per model, device and CPU flags (flags injected), the
fp32 retry of an overflowing VAE, the few-step schedulers (lcm, tcd) and the tiny autoencoder
(TAESD) on the tiny models, and the GPU-only knobs being no-ops on the CPU."""

from __future__ import annotations

import pytest
import torch

from visionloop.models.device import cpu_has_bf16, recorded_dtypes, resolve_dtype

pytestmark = pytest.mark.usefixtures("one_torch_thread")

AMX = frozenset({"avx2", "amx_tile", "amx_bf16"})
AVX512_BF16 = frozenset({"avx512f", "avx512_bf16"})
PLAIN = frozenset({"avx2", "fma"})


@pytest.mark.parametrize("device,kind,flags,cuda_bf16,expected", [
    ("cuda", "diffusion", PLAIN, True, torch.bfloat16),
    ("cuda", "diffusion", PLAIN, False, torch.float16),
    ("cuda:1", "vision", PLAIN, True, torch.bfloat16),
    ("cuda", "vision", PLAIN, False, torch.float16),
    ("mps", "diffusion", AMX, None, torch.float16),
    ("mps", "vision", PLAIN, None, torch.float16),
    ("cpu", "diffusion", AMX, None, torch.bfloat16),
    ("cpu", "diffusion", AVX512_BF16, None, torch.float32),  # measured slower in bf16 without AMX
    ("cpu", "diffusion", PLAIN, None, torch.float32),
    ("cpu", "diffusion", frozenset(), None, torch.float32),
    ("cpu", "vision", AMX, None, torch.float32),
    ("cpu", "vision", PLAIN, None, torch.float32),
])
def test_auto_dtype_per_device_and_flags(device, kind, flags, cuda_bf16, expected):
    assert resolve_dtype("auto", device, kind=kind, flags=flags, cuda_bf16=cuda_bf16) == expected


@pytest.mark.parametrize("name", ["float32", "float16", "bfloat16"])
def test_explicit_dtype_wins(name):
    assert resolve_dtype(name, "cpu", kind="diffusion", flags=AMX) == getattr(torch, name)


def test_bf16_flags():
    assert cpu_has_bf16(AMX) and not cpu_has_bf16(AVX512_BF16) and not cpu_has_bf16(PLAIN)


def test_model_cache_dtype_per_model(tiny_config, monkeypatch):
    from visionloop.models import device
    from visionloop.models.cache import ModelCache

    monkeypatch.setattr(device, "cpu_flags", lambda: AMX)
    cache = ModelCache(tiny_config.model_copy(deep=True))
    assert cache.dtype_for("diffusion") == torch.bfloat16 and cache.dtype == torch.float32
    monkeypatch.setattr(device, "cpu_flags", lambda: PLAIN)
    assert ModelCache(tiny_config).dtype_for("diffusion") == torch.float32
    cache.forced_dtypes["diffusion"] = "float32"  # a replay forces what was recorded
    monkeypatch.setattr(device, "cpu_flags", lambda: AMX)
    assert cache.dtype_for("diffusion") == torch.float32


def test_recorded_dtypes():
    manifest = {"environment": {"models": {"diffusion": {"dtype": "bfloat16"}, "llava": {"dtype": "float32"},
                                           "ocr:rapidocr": {}}}}
    assert recorded_dtypes(manifest) == {"diffusion": "bfloat16", "vision": "float32"}
    assert recorded_dtypes({}) == {}


# --- the tiny backend in bf16: VAE retry, taesd, few-step schedulers ---------------------------

@pytest.fixture(scope="module")
def bf16_backend(tiny_config):
    from visionloop.models.cache import ModelCache

    config = tiny_config.model_copy(deep=True)
    config.dtype = "bfloat16"
    return ModelCache(config).diffusion()


@pytest.fixture(scope="module")
def taesd_backend(tiny_config):
    from visionloop.models.cache import ModelCache

    config = tiny_config.model_copy(deep=True)
    config.dtype = "bfloat16"
    config.profiles[config.profile].diffusion.vae = "taesd"
    return ModelCache(config).diffusion()


def gen(backend, **kw):
    args = dict(prompt="a cat", negative_prompt=None, steps=2, guidance=7.5, seeds=[1], width=64, height=64)
    args.update(kw)
    return backend.generate("text2img", **args)


def test_nan_vae_is_retried_in_fp32(bf16_backend):
    vae = bf16_backend.text2img.vae
    calls = []

    def poison(module, args, output):  # the half-precision decoder overflows: NaN
        calls.append(next(module.parameters()).dtype)
        if next(module.parameters()).dtype != torch.float32:
            return output * float("nan")
        return output

    handle = vae.decoder.register_forward_hook(poison)
    try:
        out = gen(bf16_backend)
    finally:
        handle.remove()
    assert calls == [torch.bfloat16, torch.float32]
    assert out.status == ["ok"] and out.options["vae_float32"] == [1]
    assert vae.dtype == torch.bfloat16  # back to the model's dtype after the retry
    clean = gen(bf16_backend)
    assert clean.status == ["ok"] and clean.options["vae_float32"] == []


def test_fp32_vae_overflow_still_reported(tiny_config):
    from visionloop.models.cache import ModelCache

    config = tiny_config.model_copy(deep=True)
    config.dtype = "float32"
    backend = ModelCache(config).diffusion()
    handle = backend.text2img.vae.decoder.register_forward_hook(lambda m, a, o: o * float("nan"))
    try:
        out = gen(backend)
    finally:
        handle.remove()
    assert out.status == ["nan"] and out.options["vae_float32"] == []


@pytest.mark.parametrize("scheduler", ["lcm", "tcd"])
def test_few_step_schedulers(bf16_backend, scheduler):
    out = gen(bf16_backend, scheduler=scheduler, steps=4, guidance=1.0)
    assert out.status == ["ok"] and out.options["scheduler_name"] == scheduler
    again = gen(bf16_backend, scheduler=scheduler, steps=4, guidance=1.0)
    assert again.images[0].tobytes() == out.images[0].tobytes()


def test_few_step_note():
    from visionloop.models.schedulers import few_step_note

    lcm = [{"path": "latent-consistency/lcm-lora-sdv1-5", "scale": 1.0}]
    assert "guidance" in few_step_note("lcm", 4, 7.5, lcm)
    assert few_step_note("tcd", 4, 1.0, lcm) is None and few_step_note("euler", 4, 7.5) is None
    assert "4-8 steps" in few_step_note("lcm", 30, 1.0, lcm)
    assert "distilled model or its LoRA" in few_step_note("lcm", 4, 1.0, [], "stable-diffusion-v1-5")
    assert few_step_note("lcm", 4, 1.0, [], "SimianLuo/LCM_Dreamshaper_v7") is None  # an LCM-distilled model


def test_taesd_decodes(taesd_backend):
    from diffusers import AutoencoderTiny

    assert isinstance(taesd_backend.text2img.vae, AutoencoderTiny)
    out = gen(taesd_backend, scheduler="lcm", steps=4, guidance=1.0)
    assert out.status == ["ok"] and out.options["vae"] == "taesd"
    assert out.images[0].size == (64, 64)
    again = gen(taesd_backend, scheduler="lcm", steps=4, guidance=1.0)
    assert again.images[0].tobytes() == out.images[0].tobytes()


def test_gpu_knobs_are_noops_on_cpu(tiny_config, caplog):
    from visionloop.models.speed import compile_wanted

    spec = tiny_config.active.diffusion.model_copy(update={"compile": True, "channels_last": True})
    assert not compile_wanted(spec, "cpu")
    assert "not compiled" in caplog.text
    assert compile_wanted(spec, "cuda")


def test_a_bad_vae_setting_is_one_line_naming_it(cli, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("profile: tiny\nprofiles:\n  tiny:\n    diffusion: {model: tiny, vae: no-such-autoencoder}\n")
    r = cli("--config", config, "draw", "a cat", "--steps", "1")
    assert r.code != 0 and "Traceback" not in r.err and "UserWarning" not in r.err, r.err
    assert len(r.err.strip().splitlines()) == 1 and "diffusion.vae: no-such-autoencoder" in r.err
