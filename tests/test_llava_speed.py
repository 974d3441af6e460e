"""The in-process LLaVA's speed settings on the tiny model: `vision.quantize` (int8 dynamic
quantization of the language model, the CPU default under `dtype: auto`) and the image-feature
cache that lets follow-up questions about the same picture skip the vision tower."""

from __future__ import annotations

import pytest

from visionloop.errors import ConfigError
from visionloop.models.llava_speed import resolve_quantize
from visionloop.tools import ToolCall

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("setting, dtype, device, expected", [
    ("auto", "auto", "cpu", "int8"),
    ("auto", "float32", "cpu", "none"),  # a dtype asked for by name: full precision, as asked
    ("auto", "auto", "cuda", "none"),
    ("auto", "auto", "mps", "none"),
    ("none", "auto", "cpu", "none"),
    ("int8", "float32", "cpu", "int8"),
])
def test_quantize_resolution(setting, dtype, device, expected):
    assert resolve_quantize(setting, dtype, device) == expected


@pytest.mark.parametrize("setting, device, words", [("int4", "cpu", "torchao"), ("int8", "cuda", "on the CPU")])
def test_quantize_refusals_say_why(setting, device, words):
    with pytest.raises(ConfigError, match=words):
        resolve_quantize(setting, "auto", device)


def _backend(source, quantize="none", feature_cache=8):
    import torch

    from visionloop.models.llava import LlavaBackend

    return LlavaBackend("tiny", str(source), None, "cpu", torch.float32, offline=True,
                        quantize=quantize, feature_cache=feature_cache)


@pytest.fixture(scope="module")
def tiny_llava(tiny_cache):
    from visionloop.models.tiny import tiny_model_path

    return tiny_model_path("llava", tiny_cache)


def _linear_kinds(model):
    """'int8' for a dynamically quantized linear layer, 'float' for a plain one."""
    from torch import nn

    return {"int8" if "quantized.dynamic" in type(m).__module__ else "float"
            for m in model.modules() if isinstance(m, nn.Linear) or "quantized.dynamic" in type(m).__module__}


def test_int8_quantizes_the_language_model_only_and_its_first_tokens_agree_with_fp32(tiny_llava, example_image):
    from PIL import Image

    picture = Image.open(example_image).convert("RGB")
    full, int8 = _backend(tiny_llava, "none"), _backend(tiny_llava, "int8")
    assert _linear_kinds(int8.model.model.language_model) == {"int8"}
    assert "quantized.dynamic" in type(int8.model.lm_head).__module__
    assert _linear_kinds(int8.model.model.vision_tower) == {"float"}  # the tower stays fp32
    assert _linear_kinds(full.model) == {"float"}
    question = "Describe this image in one sentence."
    a = full.ask([picture], question, max_new_tokens=8)
    b = int8.ask([picture], question, max_new_tokens=8)
    ids = [full.processor.tokenizer(x.text)["input_ids"] for x in (a, b)]
    assert ids[0][:4] == ids[1][:4], (a.text, b.text)
    assert (a.extra["quantize"], b.extra["quantize"]) == ("none", "int8")
    assert a.extra["dtype"] == b.extra["dtype"] == "float32"


def test_a_second_question_about_the_same_picture_reuses_its_encoding(tiny_llava, example_image, tmp_path):
    from PIL import Image

    picture = Image.open(example_image).convert("RGB")
    other = picture.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    cached, plain = _backend(tiny_llava), _backend(tiny_llava, feature_cache=0)
    calls = []
    tower = cached.model.model.vision_tower
    tower.register_forward_hook(lambda *a: calls.append(1))
    first = cached.ask([picture], "What is in the sky?", max_new_tokens=6)
    second = cached.ask([picture], "What colour is the sea?", max_new_tokens=6)
    assert len(calls) == 1 and cached.features.runs == 1 and cached.features.hits == 1
    assert (first.extra["image_features"], second.extra["image_features"]) == ("computed", "reused")
    cached.ask([other], "What is in the sky?", max_new_tokens=6)  # another picture: encoded anew
    assert len(calls) == 2
    # the kept features are the very tensors: answers are bit for bit those of an uncached model
    assert second.text == plain.ask([picture], "What colour is the sea?", max_new_tokens=6).text
    assert plain.features.runs == 1 and plain.features.hits == 0


def test_see_with_several_questions_answers_each_and_encodes_the_picture_once(loop, example_image):
    from visionloop.loop import wait

    llava = wait(loop, loop.submit(lambda ctx: ctx.models.llava()))
    runs = llava.features.runs
    results = loop.call(ToolCall("see", {"image": [str(example_image)],
                                         "question": ["What is in the sky?", "Is there a boat?"]}))
    assert [r.ok for r in results] == [True, True], [r.error for r in results]
    assert [r.data["question"] for r in results] == ["What is in the sky?", "Is there a boat?"]
    assert results[1].data["image_features"] == "reused"
    assert llava.features.runs - runs <= 1
    assert results[0].data["quantize"] == "int8" and results[0].data["dtype"] == "float32"  # dtype auto on a CPU


@pytest.mark.parametrize("setting, words", [
    ("quantize: int3", "quantize"),
    ("batch_size: 0", "batch_size: must be auto or a whole number from 1 to 256 (got 0)"),
    ("batch_size: x", "batch_size: must be auto or a whole number from 1 to 256"),
    ("feature_cache: -1", "feature_cache"),
    ("quantize: int4", "profiles.tiny.vision.quantize in"),  # refused when the model loads, naming the file
])
def test_speed_settings_in_the_config_are_checked_in_one_line(cli, tmp_path, example_image, setting, words):
    config = tmp_path / "config.yaml"
    config.write_text(f"profile: tiny\nprofiles:\n  tiny:\n    vision: {{model: tiny, {setting}}}\n")
    r = cli("--config", config, "caption", example_image)
    assert r.code != 0 and words in r.err and "Traceback" not in r.err, r.err
    assert len(r.err.strip().splitlines()) == 1 and "config.yaml" in r.err


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    """Six different pictures (flips, rotations, crops of the example) and a broken file."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("pictures")
    from conftest import EXAMPLE

    base = Image.open(EXAMPLE).convert("RGB")
    variants = [base, base.transpose(Image.Transpose.FLIP_LEFT_RIGHT), base.transpose(Image.Transpose.ROTATE_90),
                base.crop((0, 0, base.width // 2, base.height // 2)), base.transpose(Image.Transpose.FLIP_TOP_BOTTOM),
                base.resize((base.width // 3, base.height // 3))]
    paths = []
    for i, picture in enumerate(variants):
        picture.save(folder / f"p{i}.png")
        paths.append(str(folder / f"p{i}.png"))
    (folder / "broken.png").write_bytes(b"not a png")
    return paths[:3] + [str(folder / "broken.png")] + paths[3:]


def _loop_with(session_config_file, tmp_path, registry, **vision):
    import yaml

    from visionloop.config import load_config
    from visionloop.context import Context
    from visionloop.loop import Loop

    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({**yaml.safe_load(session_config_file.read_text()),
                                    "profiles": {"tiny": {"vision": {"model": "tiny", **vision}}}}))
    config = load_config(path)
    return Loop(registry, Context.create(config, tmp_path / "out"))


def test_captions_of_a_folder_in_batches_equal_one_at_a_time(session_config_file, tmp_path, registry, pictures):
    batched = _loop_with(session_config_file, tmp_path / "a", registry, quantize="none", batch_size=4)
    single = _loop_with(session_config_file, tmp_path / "b", registry, quantize="none", batch_size=1)
    try:
        many = batched.call(ToolCall("caption", {"image": pictures}))
        one = single.call(ToolCall("caption", {"image": pictures}))
    finally:
        batched.close()
        single.close()
    assert len(many) == len(one) == 7
    assert "broken.png" in many[3].error and many[3].data["args"]["image"].endswith("broken.png")
    good = [i for i in range(7) if i != 3]
    assert [many[i].text for i in good] == [one[i].text for i in good]
    assert [many[i].data["batch"] for i in good] == [4, 4, 4, 4, 2, 2]  # 6 readable pictures: 4 + 2
    assert all("batch" not in one[i].data for i in good)
    for i in good:
        assert many[i].data["prompt"] == one[i].data["prompt"] and many[i].data["images"] == [pictures[i]]
        assert many[i].data["new_tokens"] == one[i].data["new_tokens"] and many[i].data["detail"] == "short"


def test_auto_batch_size_is_one_under_int8_and_sampling_is_never_batched(session_config_file, tmp_path, registry,
                                                                         pictures):
    from visionloop.loop import wait
    from visionloop.toolkit.vision_batch import batch_size, can_batch

    loop = _loop_with(session_config_file, tmp_path, registry)  # quantize auto: int8 on this CPU
    try:
        results = loop.call(ToolCall("caption", {"image": pictures[:2]}))
        assert all(r.ok and "batch" not in r.data and r.data["quantize"] == "int8" for r in results)
        assert wait(loop, loop.submit(lambda ctx: batch_size(ctx, ctx.models.llava()))) == 1
        assert not can_batch(loop.ctx, [{"temperature": 0.7}, {"temperature": 0.7}])
        assert can_batch(loop.ctx, [{}, {}]) and not can_batch(loop.ctx, [{}])
    finally:
        loop.close()


def test_replays_force_the_recorded_quantization():
    from visionloop.models.llava_speed import recorded_quantize

    def manifest(llava):
        return {"environment": {"models": {"llava": llava, "diffusion": {"dtype": "float32"}}}}

    assert recorded_quantize(manifest({"dtype": "float32", "quantize": "int8"})) == "int8"
    assert recorded_quantize(manifest({"dtype": "float32"})) == "none"  # written before quantization existed
    assert recorded_quantize({"environment": {"models": {"diffusion": {}}}}) is None  # no LLaVA ran
    assert recorded_quantize({}) is None
