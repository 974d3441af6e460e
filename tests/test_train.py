"""LoRA training on the tiny profile: the loss falls, the LoRA changes `draw`, scale 0 is the base,
the kohya file draws what the diffusers file draws, a cancel at step 30 resumed to 60 ends with
the weights of an uninterrupted 60-step run bit for bit, captions come from `.txt` files or
LLaVA, and user mistakes are one line with nothing overwritten. Runs in CI (peft is required)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visionloop.tools import ToolCall

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py: one intra-op thread

RES = 32  # training size: latents of 16x16 on the tiny model, a step in milliseconds
SETTINGS = {"steps": 60, "lr": 1e-3, "resolution": RES, "seed": 5, "trigger": "zzy", "every": 20,
            "validate": "zzy a cat"}


def make_pictures(folder: Path, count: int = 4, captions: bool = True) -> Path:
    """`count` generated pictures (coloured fields with a block), each with its caption file."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        a = np.zeros((40, 48, 3), np.uint8)
        a[..., i % 3] = 60 + 40 * i
        a[8:30, 10:34] = rng.integers(0, 255, 3)
        Image.fromarray(a).save(folder / f"p{i}.png")
        if captions:
            (folder / f"p{i}.txt").write_text(f"a block picture number {i}")
    return folder


@pytest.fixture(scope="module")
def module_ctx(tiny_config, tmp_path_factory):
    from visionloop.context import Context

    return Context.create(tiny_config, tmp_path_factory.mktemp("train-out"))


@pytest.fixture(scope="module")
def trained(module_ctx, tmp_path_factory):
    """One uninterrupted 60-step run (the reference for the resume test too)."""
    from visionloop.models.training import train_lora

    root = tmp_path_factory.mktemp("train")
    pics = make_pictures(root / "pics")
    record = train_lora(module_ctx, str(pics), "style", dict(SETTINGS), out=str(root / "loras"))
    return root, pics, Path(record["folder_out"]), record


def draw(loop, **args):
    (r,) = loop.call(ToolCall("draw", {"prompt": "zzy a cat", "seed": 3, **args}))
    assert r.ok, r.error
    return r, np.asarray(Image.open(r.images[0])).astype(int)


def test_training_lowers_the_loss_and_writes_every_file(trained):
    _, pics, folder, record = trained
    assert record["eval_loss"]["end"] < record["eval_loss"]["start"]
    for name in ("pytorch_lora_weights.safetensors", "style.kohya.safetensors", "training.json", "captions.jsonl",
                 "loss.png", "validation.png"):
        assert (folder / name).is_file(), name
    assert sorted(p.name for p in (folder / "validation").iterdir()) == \
        [f"step-{s:06d}.png" for s in (0, 20, 40, 60)]
    info = json.loads((folder / "training.json").read_text())
    assert info["status"] == "finished" and info["steps_done"] == 60 and len(info["loss"]) == 60
    assert info["base_model"]["model"] == "tiny" and info["seed"] == 5
    assert info["settings"]["lr"] == 1e-3 and info["settings"]["rank"] == 8
    assert all(len(p["sha256"]) == 64 and p["caption"].startswith("zzy, a block") for p in info["pictures"])
    assert {"torch", "diffusers", "peft"} <= set(info["versions"])
    lines = [json.loads(x) for x in (folder / "captions.jsonl").read_text().splitlines()]
    assert [x["file"] for x in lines] == ["p0.png", "p1.png", "p2.png", "p3.png"]
    assert {x["source"] for x in lines} == {"txt"}
    assert Image.open(folder / "loss.png").size[0] > 400


def test_the_lora_changes_draw_scale_0_is_the_base_and_kohya_draws_the_same(trained, loop):
    _, _, folder, _ = trained
    lora = folder / "pytorch_lora_weights.safetensors"
    _, base = draw(loop)
    r, styled = draw(loop, lora=[str(lora)])
    assert np.abs(styled - base).max() > 0
    (used,) = r.data["loras"]
    assert used["scale"] == 1.0 and len(used["sha256"]) == 64 and used["path"] == str(lora)
    _, zero = draw(loop, lora=[f"{lora}:0"])
    assert np.array_equal(zero, base)
    _, kohya = draw(loop, lora=[str(folder / "style.kohya.safetensors")])
    assert np.array_equal(kohya, styled)
    _, again = draw(loop)  # a later call without --lora: the base again, exactly
    assert np.array_equal(again, base)


def test_a_cancel_at_step_30_resumed_to_60_ends_with_the_same_weights(trained, module_ctx):
    import torch
    from safetensors.torch import load_file

    from visionloop.errors import Cancelled
    from visionloop.models.training import train_lora

    root, pics, reference, _ = trained
    out = str(root / "resumed")

    def stop_at_30(step, loss):
        if step == 30:
            module_ctx.cancel.set()

    with pytest.raises(Cancelled, match=r"interrupted at step 30/60; checkpoint saved"):
        train_lora(module_ctx, str(pics), "style", dict(SETTINGS), out=out, on_step=stop_at_30)
    module_ctx.cancel.clear()
    folder = Path(out) / "style"
    assert [p.name for p in (folder / "checkpoints").iterdir() if not p.name.startswith(".")] == \
        ["step-000020", "step-000030"]
    assert json.loads((folder / "training.json").read_text())["status"] == "interrupted"
    with pytest.raises(Exception, match="exists already"):
        train_lora(module_ctx, str(pics), "style", dict(SETTINGS), out=out)
    with pytest.raises(Exception, match="differs from"):
        train_lora(module_ctx, str(pics), "style", {"lr": 1e-2}, out=out, resume=True)
    record = train_lora(module_ctx, str(pics), "style", {}, out=out, resume=True)
    assert record["resumed_at"] == [30] and record["steps_done"] == 60
    a = load_file(reference / "pytorch_lora_weights.safetensors")
    b = load_file(folder / "pytorch_lora_weights.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert record["loss"] == json.loads((reference / "training.json").read_text())["loss"]


def test_auto_captions_come_from_llava_with_the_trigger_and_txt_files_win(loop, tmp_path):
    from visionloop.models.training.captions import QUESTION
    from visionloop.toolkit.vision import ask_llava

    pics = make_pictures(tmp_path / "pics", 3, captions=False)
    (pics / "p1.txt").write_text("my own words\n")
    (r,) = loop.call(ToolCall("train-lora", {"folder": str(pics), "name": "auto", "trigger": "zzy", "steps": 2,
                                             "resolution": 16, "lora_dir": str(tmp_path / "loras")}))
    assert r.ok, r.error
    lines = [json.loads(x) for x in Path(r.data["captions_file"]).read_text().splitlines()]
    assert [x["source"] for x in lines] == ["llava", "txt", "llava"]
    assert lines[1]["caption"] == "zzy, my own words"
    asked = ask_llava(loop.ctx, "train-lora", [str(pics / "p0.png")], QUESTION).text
    from visionloop.models.training.captions import clean

    assert lines[0]["caption"] == f"zzy, {clean(asked)}"
    assert r.data["steps"] == 2 and Path(r.data["lora"]).is_file() and r.images


def test_one_readable_picture_an_empty_folder_and_a_taken_name_are_one_line_errors(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("VISIONLOOP_DATA_DIR", str(tmp_path / "data"))
    loras = tmp_path / "data" / "loras"
    one = make_pictures(tmp_path / "one", 1)
    (one / "broken.png").write_bytes(b"not a picture")
    res = cli("train", one, "--name", "x", "--steps", "2", "--resolution", "16")
    assert res.code == 1 and res.err.count("\n") <= 2, res.err
    assert "1 readable picture(s) (1 skipped); training needs at least 2" in res.err
    assert "skipped" in res.err and "broken.png" in res.err
    assert not loras.exists()
    (tmp_path / "empty").mkdir()
    res = cli("train", tmp_path / "empty", "--name", "x")
    assert res.code == 1 and "no pictures in this folder" in res.err and res.err.count("\n") == 1
    taken = loras / "x"
    taken.mkdir(parents=True)
    (taken / "pytorch_lora_weights.safetensors").write_bytes(b"keep me")
    res = cli("train", make_pictures(tmp_path / "two", 2), "--name", "x", "--steps", "2", "--resolution", "16")
    assert res.code == 1 and "exists already; give --overwrite" in res.err and res.err.count("\n") == 1
    assert (taken / "pytorch_lora_weights.safetensors").read_bytes() == b"keep me"
    assert cli("train", tmp_path / "two").code == 2  # --name missing: a usage error
    res = cli("train", tmp_path / "two", "--name", "../up")
    assert res.code == 1 and "not a usable LoRA name" in res.err
    res = cli("train", tmp_path / "two", "--name", "y", "--precision", "fp16")  # the CPU has no fp16 training
    assert res.code == 1 and "fp16 needs a GPU" in res.err and not (loras / "y").exists()


def test_a_missing_caption_file_fails_before_anything_is_written(cli, tmp_path):
    pics = make_pictures(tmp_path / "pics", 2)
    (pics / "p1.txt").unlink()
    res = cli("train", pics, "--name", "x", "--captions", "files", "--out", tmp_path / "loras")
    assert res.code == 1 and "p1.png: no caption file p1.txt" in res.err
    assert not (tmp_path / "loras").exists()


def test_a_lora_for_another_model_family_is_refused(loop, tmp_path):
    import torch
    from safetensors.torch import save_file

    key = "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.lora.down.weight"
    save_file({key: torch.zeros(4, 768), key.replace("down", "up"): torch.zeros(32, 4)}, tmp_path / "sd15.safetensors")
    (r,) = loop.call(ToolCall("draw", {"prompt": "a cat", "lora": [str(tmp_path / "sd15.safetensors")]}))
    assert r.error and "trained for SD 1.x (768-wide text features)" in r.error and "\n" not in r.error


def test_lora_names_resolve_from_the_loras_folder_and_loras_lists_them(trained, cli, monkeypatch, tmp_path):
    import shutil

    _, _, folder, _ = trained
    data = tmp_path / "data"
    shutil.copytree(folder, data / "loras" / "style", ignore=shutil.ignore_patterns("checkpoints", "validation"))
    monkeypatch.setenv("VISIONLOOP_DATA_DIR", str(data))
    res = cli("--json", "loras")
    assert res.code == 0, res.err
    (entry, summary) = [json.loads(x) for x in res.out.splitlines()]
    assert (entry["name"], entry["base_model"], entry["trigger"], entry["steps"]) == ("style", "tiny", "zzy", 60)
    assert summary["summary"]["results"] == 1
    res = cli("draw", "zzy a cat", "--seed", "3", "--lora", "style:0.5", "--json")
    assert res.code == 0, res.err
    (used,) = json.loads(res.out.splitlines()[0])["data"]["loras"]
    assert (used["name"], used["scale"]) == ("style", 0.5)
    res = cli("draw", "a cat", "--lora", "nosuch")
    assert res.code == 1 and "no LoRA of that name" in res.err and "trained LoRAs: style" in res.err


def test_batches_are_a_function_of_seed_and_step():
    from visionloop.models.training.data import batch_order

    first = [batch_order(1, s, 2, 5, True) for s in range(10)]
    assert first == [batch_order(1, s, 2, 5, True) for s in range(10)]
    epoch = [i for s in range(5) for i, _ in batch_order(1, s, 1, 5, False)]
    assert sorted(epoch) == [0, 1, 2, 3, 4]  # each picture once per epoch
    assert any(f for step in first for _, f in step) and not all(f for step in first for _, f in step)


def test_the_progress_bar_shows_step_loss_speed_and_time_left():
    import io

    from visionloop.models.training.report import Bar

    out = io.StringIO()
    bar = Bar(10, stream=out)
    bar.update(5, 0.1234, force=True)
    bar.close()
    text = out.getvalue()
    assert "5/10" in text and "loss 0.1234" in text and "s/step" in text and "left" in text
