"""The LLaVA tools on the tiny profile: end to end, several images in one prompt, parity with
raw transformers, one load per process, streaming, and clear offline errors."""

import hashlib
from pathlib import Path

import pytest

from visionloop.context import Context
from visionloop.loop import Loop
from visionloop.tools import ToolCall


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
    (noted,) = call(loop, "read-text", image=[str(example_image)], engine="llava", lang="de", top_p=0.5)
    assert [n.split(":")[0] for n in noted.data["notes"]] == ["top_p", "lang de is not used by the llava engine (its prompt names no language)"]


def test_sampling_is_seeded_and_recorded(loop, example_image):
    """Sampling (temperature > 0): the same seed gives the same text, other seeds other texts,
    and greedy decoding gives one text whatever the seed."""
    args = dict(image=[str(example_image)], temperature=1.0, top_p=0.9, seed=7)
    a, b = call(loop, "caption", **args)[0], call(loop, "caption", **args)[0]
    assert a.text == b.text
    assert a.data["do_sample"] is True and a.data["temperature"] == 1.0 and a.data["seed"] == 7
    others = {call(loop, "caption", **dict(args, seed=seed))[0].text for seed in (8, 9)}
    assert a.text not in others and len(others) == 2
    greedy = [call(loop, "caption", image=[str(example_image)], seed=seed)[0] for seed in (7, 8)]
    assert greedy[0].text == greedy[1].text and "notes" not in a.data
    assert greedy[0].data["notes"] == ["seed: no effect with greedy decoding (temperature 0); "
                                       "give a temperature above 0 to sample"]


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


def test_tiny_model_build_is_deterministic(tmp_path, capfd):
    from visionloop.models.tiny import tiny_model_path

    a = tiny_model_path("llava", tmp_path / "a")
    assert "%|" not in capfd.readouterr().err  # a first run shows no "Writing model shards" bar
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

    code = ("import sys; from pathlib import Path; from visionloop.models.tiny import tiny_model_path\n"
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
    assert result.err.strip() == (f"error: {tmp_path}/nomodel: model folder not found "
                                  f"(check profiles.default.vision.model in {cfg})")


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


# --- prompt length: counted by the processor, refused when it does not fit ------------------------

def raw_input_length(source, image_paths, prompt: str) -> int:
    """The prompt's length as the model receives it: plain transformers' processor, no visionloop."""
    from PIL import Image
    from transformers import AutoProcessor

    images = [Image.open(p).convert("RGB") for p in image_paths]
    return len(AutoProcessor.from_pretrained(source)(images=images, text=prompt)["input_ids"][0])


def test_prompt_tokens_are_counted_by_the_processor(loop, example_image, tmp_path):
    from PIL import Image

    other = tmp_path / "wide.png"
    Image.new("RGB", (120, 60), (0, 90, 200)).save(other)
    (result,) = call(loop, "see", image=[str(example_image), str(other)], question="which is bluer?")
    data = result.data
    vision = loop.ctx.models.llava().model.config.vision_config
    assert data["image_tokens"] == 2 * (vision.image_size // vision.patch_size) ** 2  # 16 each, not 576
    assert data["prompt_tokens"] == raw_input_length(data["model"], [example_image, other], data["prompt"])
    assert data["context_length"] == 2048


def test_llava_next_image_tokens_depend_on_the_image(tmp_path):
    """LLaVA-NeXT cuts an image into tiles: the count changes with the image's shape."""
    import torch
    from PIL import Image
    from transformers import (CLIPVisionConfig, LlamaConfig, LlavaNextConfig, LlavaNextForConditionalGeneration,
                              LlavaNextImageProcessor, LlavaNextProcessor)

    from visionloop.models.llava import LlavaBackend
    from visionloop.models.tiny import LLAVA_CHAT_TEMPLATE, _make_tokenizer

    tok = _make_tokenizer()
    pins = [[32, 64], [64, 32], [64, 64]]
    config = LlavaNextConfig(
        vision_config=CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                       num_attention_heads=4, image_size=32, patch_size=8),
        text_config=LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512),
        image_grid_pinpoints=pins, image_token_index=tok.convert_tokens_to_ids("<image>"))
    LlavaNextForConditionalGeneration(config).save_pretrained(tmp_path / "next")
    LlavaNextProcessor(image_processor=LlavaNextImageProcessor(size={"shortest_edge": 32}, crop_size=32,
                                                               image_grid_pinpoints=pins),
                       tokenizer=tok, patch_size=8, vision_feature_select_strategy="default",
                       num_additional_image_tokens=1, chat_template=LLAVA_CHAT_TEMPLATE).save_pretrained(tmp_path / "next")
    next_ = LlavaBackend("next", str(tmp_path / "next"), None, "cpu", torch.float32)
    counts = {}
    for size in ((120, 60), (64, 64), (30, 90)):
        paths = [tmp_path / f"{size[0]}x{size[1]}.png"]
        Image.new("RGB", size, (200, 10, 10)).save(paths[0])
        image = Image.open(paths[0]).convert("RGB")
        prompt = next_.build_prompt("what is it?", 1)
        counts[size] = next_.image_tokens([image])
        assert next_.count_tokens(prompt, counts[size]) == raw_input_length(tmp_path / "next", paths, prompt)
        # a processor without the quick count: the prompt is expanded by the processor instead
        with pytest.MonkeyPatch.context() as mp:
            mp.delattr(type(next_.processor), "_get_num_multimodal_tokens")
            assert next_.image_tokens([image]) == counts[size]
    assert len(set(counts.values())) > 1, counts
    assert next_.context_length == 512


def test_too_long_a_question_is_refused_in_one_line(cli, example_image, loop):
    question = "word " * 9000
    result = cli("see", example_image, "-q", question)
    assert result.code == 1 and result.out == ""
    line = result.err
    assert line.count("\n") == 1 and "Traceback" not in line
    llava = loop.ctx.models.llava()
    tokens = raw_input_length(llava.source, [example_image], llava.build_prompt(question, 1))
    assert tokens > 2048
    assert line.startswith(f"error: question: the prompt is {tokens} tokens, 16 of them for the image(s)")
    assert "context is 2048 tokens, which leaves 0 for the answer (max_new_tokens is 24): shorten the question" in line


@pytest.mark.parametrize("tool,args", [("see", ("-q", "what?")), ("caption", ()),
                                       ("read-text", ("--engine", "llava"))])
def test_no_room_for_the_answer_is_refused_by_every_llava_tool(cli, example_image, tool, args):
    result = cli(tool, example_image, *args, "--max-new-tokens", "2040")
    assert result.code == 1 and result.err.count("\n") == 1, result.err
    name = "question" if tool == "see" else tool
    assert result.err.startswith(f"error: {name}: the prompt is ")
    assert "context is 2048 tokens, which leaves" in result.err and "or lower max_new_tokens" in result.err
    assert cli(tool, example_image, *args, "--max-new-tokens", "8").code == 0


def test_restyle_description_is_checked_too(cli, example_image, tmp_path):
    cfg = tmp_path / "c.yaml"
    import os

    cfg.write_text(open(os.environ["VISIONLOOP_CONFIG"]).read()
                   + "profiles:\n  tiny:\n    vision: {model: tiny, max_new_tokens: 4000}\n"
                   + "    diffusion: {model: tiny, steps: 4, width: 64, height: 64}\n")
    result = cli("--config", cfg, "restyle", example_image, "--style", "ink")
    assert result.code == 1 and result.err.count("\n") == 1, result.err
    assert result.err.startswith("error: restyle: the prompt is ") and "(max_new_tokens is 4000)" in result.err


def test_an_image_marker_in_the_question_is_refused(cli, example_image):
    result = cli("see", example_image, "-q", "what does <image> mean in this sign?")
    assert result.code == 1 and result.err.count("\n") == 1
    assert result.err.startswith("error: question: contains '<image>'")
