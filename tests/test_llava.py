"""The LLaVA tools on the tiny profile: end to end, several images in one prompt, parity with
raw transformers, one load per process, streaming, and clear offline errors."""

import hashlib
import json
from pathlib import Path

import pytest

from agent.config import load_config
from agent.context import Context
from agent.loop import Loop
from agent.tools import ToolCall


def call(loop, tool, **args):
    results = loop.call(ToolCall(tool, args))
    for r in results:
        assert r.error is None, r.error
    return results


def raw_generate(source: str, image_paths, prompt: str, max_new_tokens: int) -> str:
    """What plain transformers gives for the same weights, images, prompt and settings."""
    import torch
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(source)
    model = AutoModelForImageTextToText.from_pretrained(source, dtype=torch.float32).eval()
    images = [Image.open(p).convert("RGB") for p in image_paths]
    inputs = processor(images=images, text=prompt, return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    return processor.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()


def test_caption_end_to_end_records_everything(loop, example_image):
    (result,) = call(loop, "caption", image=[str(example_image)])
    data = result.data
    assert result.text and result.tool == "caption"
    assert "/tiny/llava-v" in data["model"] and data["model_id"] == "tiny"
    assert data["prompt"] == "USER: <image>\nDescribe this image in one sentence. ASSISTANT:"
    assert data["max_new_tokens"] == 24 and data["do_sample"] is False
    assert data["images"] == [str(example_image)] and data["device"] == "cpu"
    long = call(loop, "caption", image=[str(example_image)], detail="long")[0]
    assert "in detail" in long.data["prompt"]


def test_caption_parity_with_raw_transformers(loop, example_image):
    (result,) = call(loop, "caption", image=[str(example_image)])
    assert result.text == raw_generate(result.data["model"], [example_image], result.data["prompt"],
                                       result.data["max_new_tokens"])


def test_see_puts_all_images_in_one_prompt(loop, example_image, tmp_path):
    from PIL import Image

    other = tmp_path / "other.png"
    Image.new("RGB", (40, 30), (200, 10, 10)).save(other)
    (result,) = call(loop, "see", image=[str(example_image), str(other)], question="which is redder?")
    assert result.data["prompt"].count("<image>") == 2
    assert result.data["images"] == [str(example_image), str(other)]
    assert result.text == raw_generate(result.data["model"], [example_image, other], result.data["prompt"],
                                       result.data["max_new_tokens"])


def test_read_text_llava_engine(loop, example_image):
    (result,) = call(loop, "read-text", image=[str(example_image)], engine="llava")
    assert result.data["engine"] == "llava" and "Read all the text" in result.data["prompt"]


def test_sampling_is_seeded_and_recorded(loop, example_image):
    args = dict(image=[str(example_image)], temperature=1.0, top_p=0.9, seed=7)
    a, b = call(loop, "caption", **args)[0], call(loop, "caption", **args)[0]
    assert a.text == b.text
    assert a.data["do_sample"] is True and a.data["temperature"] == 1.0 and a.data["seed"] == 7


def test_three_calls_load_the_model_once(tiny_config, registry, example_image, tmp_path):
    lp = Loop(registry, Context.create(tiny_config, tmp_path))
    try:
        call(lp, "caption", image=[str(example_image)])
        call(lp, "see", image=[str(example_image)], question="what?")
        call(lp, "read-text", image=[str(example_image)], engine="llava")
        assert lp.ctx.models.loads["llava"] == 1
    finally:
        lp.close()


def test_streaming_callback_receives_the_answer(tiny_config, registry, example_image, tmp_path):
    pieces = []
    lp = Loop(registry, Context.create(tiny_config, tmp_path, on_text=pieces.append))
    try:
        (result,) = call(lp, "caption", image=[str(example_image)])
    finally:
        lp.close()
    assert "".join(pieces).strip() == result.text


def test_tiny_model_build_is_deterministic(tmp_path):
    from agent.models.tiny import tiny_model_path

    a = tiny_model_path("llava", tmp_path / "a")
    b = tiny_model_path("llava", tmp_path / "b")
    digest = lambda p: hashlib.sha256((p / "model.safetensors").read_bytes()).hexdigest()  # noqa: E731
    assert digest(a) == digest(b)
    assert (a / ".complete").exists() and (a / "chat_template.jinja").exists()


def test_uncached_real_model_offline_is_a_clear_error(cli, tmp_path, example_image, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    cfg = tmp_path / "c.yaml"
    cfg.write_text("profile: default\n")
    result = cli("--config", cfg, "caption", example_image)
    assert result.code == 1
    line = result.err.strip()
    assert "\n" not in line and "Traceback" not in line
    assert "llava-hf/llava-1.5-7b-hf" in line and "not found in the local cache" in line
    assert "download" in line


def test_device_that_is_not_there(cli, tmp_path, example_image):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"profile: tiny\ndevice: cuda\ncache_dir: {tmp_path}\n")
    result = cli("--config", cfg, "caption", example_image)
    assert result.code == 1 and "no CUDA GPU" in result.err


def test_two_processes_build_the_tiny_model_once(tmp_path):
    import subprocess
    import sys

    code = ("import sys; from pathlib import Path; from agent.models.tiny import tiny_model_path\n"
            "print(tiny_model_path('llava', Path(sys.argv[1])))\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-500:] for o in outs]
    assert outs[0][0] == outs[1][0]
    built = Path(outs[0][0].strip())
    assert (built / ".complete").exists()
    assert not list(built.parent.glob("*.building"))


def test_missing_local_model_folder(cli, tmp_path, example_image):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"profiles:\n  default:\n    vision:\n      model: {tmp_path}/nomodel\n")
    result = cli("--config", cfg, "caption", example_image)
    assert result.code == 1
    assert result.err.strip() == f"error: {tmp_path}/nomodel: model folder not found (check the model path in the profile)"


def test_unreachable_hub_fails_at_once_in_one_line(tmp_path, example_image):
    """No HF_HUB_OFFLINE, but the hub cannot be reached (a closed local port stands in for a
    machine with no network): one line, no minutes of retries."""
    from conftest import run_subprocess

    cfg = tmp_path / "c.yaml"
    cfg.write_text("profile: default\n")
    env = {"HF_HUB_OFFLINE": "", "HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": "http://127.0.0.1:9",
           "VISIONLOOP_CONFIG": str(cfg)}
    proc = run_subprocess("caption", example_image, env=env)
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "llava-hf/llava-1.5-7b-hf: model not found in the local cache" in proc.stderr
    assert "(no network)" in proc.stderr
