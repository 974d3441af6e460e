"""LLaVA on a server, through both wire formats (Ollama's /api/chat, OpenAI's
/v1/chat/completions), against a real HTTP server on 127.0.0.1: streamed answers split across
chunks, what the server received (model, options, base64 images that decode to the loaded
pixels, the messages of a follow-up turn), several images, cancelling a slow stream."""

from __future__ import annotations

import threading
import time

import pytest
from PIL import Image

from chat_fixtures import Talk
from remote_vision_helpers import (DIGEST_OLLAMA, backend, fake, make_loop, remote, sent_images, vision_section,  # noqa: F401
                                   write_config)
from visionloop.errors import Cancelled
from visionloop.tools import ToolCall


def test_caption_streams_and_the_server_gets_model_options_and_pixels(remote, fake, backend, example_image):
    streamed = []
    ctx = remote.ctx
    ctx.on_text = streamed.append
    try:
        (result,) = remote.call(ToolCall("caption", {"image": [str(example_image)]}))
    finally:
        ctx.on_text = None
    assert result.ok, result.error
    assert result.text == fake.answer and "".join(streamed) == fake.answer and len(streamed) > 3
    (request,) = fake.chats()
    body = request["body"]
    assert body["stream"] is True
    if backend == "ollama":
        assert body["model"] == "llava:7b"
        assert body["options"] == {"temperature": 0.0, "num_predict": 24, "seed": 0}  # greedy + a fixed seed
        assert body["messages"][0]["content"] == "Describe this image in one sentence."
        assert result.data["digest"] == result.data["revision"] == DIGEST_OLLAMA
    else:
        assert body["model"] == "llava-v1.6-34b"
        assert (body["max_tokens"], body["temperature"], body["seed"]) == (24, 0.0, 0)
        assert body["stream_options"] == {"include_usage": True}
        assert body["messages"][0]["content"][-1] == {"type": "text", "text": "Describe this image in one sentence."}
        assert "digest" not in result.data
    (picture,) = sent_images(request)
    assert picture.format == "PNG"
    loaded = ctx.load_image(str(example_image))
    assert picture.size == loaded.size and picture.convert("RGB").tobytes() == loaded.tobytes()
    data = result.data
    assert data["backend"] == backend and data["base_url"].startswith(fake.url)
    assert data["model"] == data["model_id"] == body["model"]
    assert data["new_tokens"] == len(fake.pieces()) and data["sent_sizes"] == [list(loaded.size)]
    assert data["max_new_tokens"] == 24 and data["do_sample"] is False and "seed" not in data  # as transformers


def test_a_large_photo_is_scaled_to_max_side_after_exif(fake, backend, tiny_cache, tmp_path, registry):
    photo = tmp_path / "photo.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: the loader turns it upright, 400 wide becomes 400 high
    Image.effect_mandelbrot((600, 400), (-2, -1, 1, 1), 60).convert("RGB").save(photo, exif=exif, quality=95)
    config = write_config(tmp_path, tiny_cache, vision_section(backend, fake, max_side=128))
    loop = make_loop(config, registry, tmp_path / "out")
    try:
        (result,) = loop.call(ToolCall("caption", {"image": [str(photo)]}))
        loaded = loop.ctx.load_image(str(photo))
    finally:
        loop.close()
    assert result.ok, result.error
    assert loaded.size == (400, 600)
    (picture,) = sent_images(fake.chats()[0])
    expected = loaded.resize((85, 128), Image.Resampling.LANCZOS)
    assert picture.size == (85, 128) and result.data["sent_sizes"] == [[85, 128]]
    assert picture.convert("RGB").tobytes() == expected.tobytes()


def test_jpeg_on_the_wire_when_asked(fake, backend, tiny_cache, tmp_path, registry, example_image):
    loop = make_loop(write_config(tmp_path, tiny_cache, vision_section(backend, fake, image_format="jpeg")),
                     registry, tmp_path / "out")
    try:
        (result,) = loop.call(ToolCall("see", {"image": [str(example_image)], "question": "what is it?"}))
    finally:
        loop.close()
    assert result.ok, result.error
    (picture,) = sent_images(fake.chats()[0])
    assert picture.format == "JPEG" and picture.size == (256, 192)


def test_see_sends_several_images_with_one_question(remote, fake, example_image, tmp_path):
    other = tmp_path / "other.png"
    Image.new("RGB", (40, 30), (200, 10, 10)).save(other)
    (result,) = remote.call(ToolCall("see", {"image": [str(example_image), str(other)], "question": "what differs?"}))
    assert result.ok, result.error
    pictures = sent_images(fake.chats()[0])
    assert [p.size for p in pictures] == [(256, 192), (40, 30)]
    assert pictures[1].convert("RGB").getpixel((0, 0)) == (200, 10, 10)
    assert result.data["image_tokens"] == 2 * 576 and result.data["prompt"].startswith("user: [image 1] [image 2]")


def test_sampling_settings_reach_the_server(remote, fake, backend, example_image):
    call = ToolCall("see", {"image": [str(example_image)], "question": "what is it?", "temperature": 0.7,
                            "top_p": 0.9, "seed": 5, "max_new_tokens": 10})
    (result,) = remote.call(call)
    assert result.ok, result.error
    body = fake.chats()[0]["body"]
    sent = body["options"] if backend == "ollama" else body
    assert sent["temperature"] == 0.7 and sent["top_p"] == 0.9 and sent["seed"] == 5
    assert (sent["num_predict"] if backend == "ollama" else sent["max_tokens"]) == 10
    assert (result.data["temperature"], result.data["top_p"], result.data["seed"]) == (0.7, 0.9, 5)


def test_ollama_keep_alive_and_context_length_are_sent(fake, tiny_cache, tmp_path, registry, example_image):
    vision = vision_section("ollama", fake, keep_alive="-1", context_length=8192)
    loop = make_loop(write_config(tmp_path, tiny_cache, vision), registry, tmp_path / "out")
    try:
        (result,) = loop.call(ToolCall("caption", {"image": [str(example_image)]}))
    finally:
        loop.close()
    body = fake.chats()[0]["body"]
    assert body["keep_alive"] == -1 and body["options"]["num_ctx"] == 8192
    assert result.data["context_length"] == 8192


def test_chat_follow_up_carries_the_earlier_turn_and_its_images(remote, fake, backend, example_image):
    t = Talk(remote, stream=True)
    out, err = t.say(f"what is in {example_image}?")
    assert out.strip() == fake.answer, err
    fake.answer = "It is white and red."
    out, err = t.say("and what colour is it?")
    assert out.strip() == fake.answer, err
    assert t.chat.session.last_result.data["history_turns"] == 1
    first, second = fake.chats()
    messages = second["body"]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    texts = [m["content"] if isinstance(m["content"], str) else
             " ".join(p["text"] for p in m["content"] if p["type"] == "text") for m in messages]
    assert texts == [first_question(first), "A lighthouse on a rocky cliff at dusk.", "and what colour is it?"]
    assert len(sent_images(second)) == 1 and len(sent_images(first)) == 1  # the images travel with the first turn


def first_question(request) -> str:
    content = request["body"]["messages"][0]["content"]
    return content if isinstance(content, str) else next(p["text"] for p in content if p["type"] == "text")


def test_history_is_trimmed_to_the_configured_context(fake, tiny_cache, tmp_path, registry, example_image):
    fake.answer = "word " * 300  # ~1500 bytes: about 500 tokens by the estimate
    vision = vision_section("ollama", fake, context_length=2048, max_new_tokens=100)
    loop = make_loop(write_config(tmp_path, tiny_cache, vision), registry, tmp_path / "out")
    try:
        t = Talk(loop)
        for question in ("what is it?", "is it old?", "is it tall?", "and the sky?"):
            out, _ = t.say(f"{question} {example_image}" if question == "what is it?" else question)
        result = t.chat.session.last_result
    finally:
        loop.close()
    assert result.ok and result.data["history_turns"] == 2 and result.data["prompt_tokens"] + 100 <= 2048
    assert "note: the 1 oldest turn(s) were left out to fit the model's context" in out
    assert len(fake.chats()[-1]["body"]["messages"]) == 5


def test_cancel_stops_a_slow_stream_at_once_and_the_server_sees_it(remote, fake, example_image):
    fake.piece_delay = 1.0
    fake.answer = " ".join(["slow"] * 30)
    llava = remote.ctx.models.llava()
    cancel = threading.Event()
    got = []

    def on_text(text):
        got.append(text)
        if len(got) == 2:
            threading.Timer(0.1, cancel.set).start()  # Ctrl-C while the next piece is still on its way

    picture = remote.ctx.load_image(str(example_image))
    started = time.monotonic()
    with pytest.raises(Cancelled):
        llava.ask([picture], "what is it?", on_text=on_text, cancel=cancel)
    assert time.monotonic() - started < 2.5  # 2 pieces (1 s apart) + 0.1 s, not 30 s
    assert fake.disconnected.wait(3) and fake.pieces_sent < 6  # the server stopped sending


def test_cancel_while_the_model_loads_on_the_server(remote, fake, example_image):
    fake.first_delay = 5.0
    llava = remote.ctx.models.llava()
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(Cancelled):
        llava.ask([remote.ctx.load_image(str(example_image))], "what is it?", cancel=cancel)
    assert time.monotonic() - started < 1.5


def test_through_the_loop_a_cancel_ends_the_job(remote, fake, example_image):
    fake.piece_delay = 0.5
    future = remote.submit_call(ToolCall("see", {"image": [str(example_image)], "question": "what is it?"}))
    deadline = time.monotonic() + 10
    while fake.pieces_sent < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    remote.cancel()
    with pytest.raises(Cancelled):
        future.result(timeout=2)
