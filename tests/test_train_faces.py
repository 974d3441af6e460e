"""The faces of LoRA training: a workflow that trains and then draws with the result, the text
encoder's LoRA in both files, a profile's `loras:` naming a trained LoRA, and SIGTERM on the
`train` command (a checkpoint, exit 143, `--resume` continues)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from test_train import make_pictures
from visionloop.tools import ToolCall

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py: one intra-op thread

WORKFLOW = """\
name: train-and-draw
inputs:
  pictures: {type: text}
  where: {type: text}
steps:
  - id: train
    tool: train-lora
    with: {folder: "${inputs.pictures}", name: wf, trigger: zzy, steps: 3, resolution: 16, lora_dir: "${inputs.where}"}
  - id: draw
    tool: draw
    with: {prompt: "zzy a cat", seed: 1, lora: "${steps.train.data.lora}"}
outputs:
  lora: "${steps.train.data.lora}"
  picture: "${steps.draw.image}"
"""


def test_a_workflow_trains_then_draws_with_the_lora(cli, tmp_path):
    pics = make_pictures(tmp_path / "pics", 2)
    wf = tmp_path / "wf.yaml"
    wf.write_text(WORKFLOW)
    assert cli("validate", wf).code == 0
    res = cli("--json", "run", wf, "--input", f"pictures={pics}", "--input", f"where={tmp_path / 'loras'}",
              "--out", tmp_path / "out")
    assert res.code == 0, res.err
    item = json.loads(res.out.splitlines()[0])
    manifest = json.loads(Path(item["manifest"]).read_text())
    draw_step = manifest["steps"][1]
    (used,) = draw_step["data"]["loras"]
    assert used["path"] == str(tmp_path / "loras" / "wf" / "pytorch_lora_weights.safetensors")
    assert len(used["sha256"]) == 64 and used["scale"] == 1.0


def test_the_text_encoder_lora_is_in_both_files_and_they_draw_the_same(loop, tmp_path):
    from safetensors import safe_open

    pics = make_pictures(tmp_path / "pics", 2)
    (r,) = loop.call(ToolCall("train-lora", {"folder": str(pics), "name": "te", "steps": 4, "resolution": 16,
                                             "lr": 1e-2, "text_encoder": True, "lora_dir": str(tmp_path)}))
    assert r.ok, r.error
    with safe_open(r.data["kohya"], "pt") as fh:
        keys = list(fh.keys())
        assert fh.metadata()["ss_network_dim"] == "8"
    assert any(k.startswith("lora_te1_") for k in keys) and any(k.startswith("lora_unet_") for k in keys)
    pictures = []
    for file in (r.data["lora"], r.data["kohya"]):
        (d,) = loop.call(ToolCall("draw", {"prompt": "a cat", "seed": 2, "lora": [file]}))
        assert d.ok, d.error
        pictures.append(np.asarray(Image.open(d.images[0])))
    assert np.array_equal(*pictures)


def test_a_profile_names_a_trained_lora(loop, tiny_config, tmp_path, monkeypatch):
    from visionloop.config import Lora
    from visionloop.models.cache import ModelCache

    monkeypatch.setenv("VISIONLOOP_DATA_DIR", str(tmp_path / "data"))
    (r,) = loop.call(ToolCall("train-lora", {"folder": str(make_pictures(tmp_path / "pics", 2)), "name": "mine",
                                             "steps": 3, "resolution": 16, "lr": 1e-2}))
    assert r.ok, r.error
    config = tiny_config.model_copy(deep=True)
    config.profiles[config.profile].diffusion.loras = [Lora(path="mine", scale=0.7)]
    backend = ModelCache(config).diffusion()
    (rec,) = backend.loras
    from visionloop.images import sha256_file

    assert rec["scale"] == 0.7 and rec["sha256"] == sha256_file(r.data["lora"])


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM is a POSIX signal")
def test_sigterm_saves_a_checkpoint_and_resume_finishes(tmp_path, tiny_cache, cli, monkeypatch):
    import yaml

    pics = make_pictures(tmp_path / "pics", 2)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"profile": "tiny", "cache_dir": str(tiny_cache), "threads": 1}))
    env = {**os.environ, "VISIONLOOP_CONFIG": str(config), "HF_HUB_OFFLINE": "1",
           "VISIONLOOP_DATA_DIR": str(tmp_path / "data")}
    args = [sys.executable, "-m", "visionloop", "train", str(pics), "--name", "t", "--resolution", "16"]
    proc = subprocess.Popen([*args, "--steps", "100000", "--every", "100000"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    record = tmp_path / "data" / "loras" / "t" / "training.json"  # written as the first step starts
    deadline = time.monotonic() + 120
    while not record.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # a few steps run
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "interrupted: training interrupted at step" in err and "--resume" in err
    state = json.loads((tmp_path / "data" / "loras" / "t" / "training.json").read_text())
    done = state["steps_done"]
    assert state["status"] == "interrupted" and done >= 1
    monkeypatch.setenv("VISIONLOOP_DATA_DIR", str(tmp_path / "data"))
    res = cli(*args[3:], "--steps", str(done + 2), "--resume", "--json")
    assert res.code == 0, res.err
    result = json.loads(res.out.splitlines()[0])
    assert result["data"]["steps"] == done + 2 and result["data"]["resumed_at"] == [done]
