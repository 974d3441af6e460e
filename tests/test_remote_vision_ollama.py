"""The same checks against a real Ollama: run with `pytest -m ollama` where `$OLLAMA_HOST` (or
127.0.0.1:11434) answers and a LLaVA model is pulled (`$OLLAMA_VISION_MODEL`, default llava:7b).
Left out of the default run (pyproject's addopts); skipped, saying why, when there is no server."""

from __future__ import annotations

import threading
import time

import pytest

from remote_vision_helpers import make_loop, write_config
from visionloop.errors import Cancelled
from visionloop.tools import ToolCall

pytestmark = pytest.mark.ollama


@pytest.fixture(scope="module")
def server():
    import os

    from visionloop.models.ollama import same_model
    from visionloop.models.remote_common import ollama_base_url
    from visionloop.models.remote_http import httpx

    url = ollama_base_url(None)
    model = os.environ.get("OLLAMA_VISION_MODEL", "llava:7b")
    try:
        tags = httpx().get(url + "/api/tags", timeout=2.0).json()
    except Exception as exc:  # noqa: BLE001 - any failure means "no server here"
        pytest.skip(f"no Ollama at {url} ({type(exc).__name__}); set OLLAMA_HOST")
    names = [m.get("name") for m in tags.get("models", [])]
    if not any(same_model(n, model) for n in names if n):
        pytest.skip(f"{model} is not pulled on {url}: run `ollama pull {model}` (or set OLLAMA_VISION_MODEL)")
    return url, model


@pytest.fixture
def real(server, tiny_cache, tmp_path, registry):
    url, model = server
    vision = {"backend": "ollama", "model": model, "host": url, "max_new_tokens": 32}
    loop = make_loop(write_config(tmp_path, tiny_cache, vision), registry, tmp_path / "out")
    yield loop
    loop.close()


def test_real_caption_streams_repeats_and_records_the_digest(real, server, example_image):
    streamed = []
    real.ctx.on_text = streamed.append
    try:
        (first,) = real.call(ToolCall("caption", {"image": [str(example_image)]}))
        (second,) = real.call(ToolCall("caption", {"image": [str(example_image)]}))
    finally:
        real.ctx.on_text = None
    assert first.ok and first.text, first.error
    assert first.text == second.text  # greedy + a fixed seed
    assert "".join(streamed).startswith(first.text)
    assert first.data["backend"] == "ollama" and first.data["base_url"] == server[0]
    assert len(first.data["digest"]) >= 12 and first.data["model"] == server[1]


def test_real_follow_up_and_several_images(real, example_image, tmp_path):
    from chat_fixtures import Talk

    t = Talk(real)
    t.say(f"what is in {example_image}?")
    t.say("what colour is the sky?")
    result = t.chat.session.last_result
    assert result.ok and result.data["history_turns"] == 1, result.error
    (both,) = real.call(ToolCall("see", {"image": [str(example_image)] * 2, "question": "are these the same?"}))
    assert both.ok and both.text, both.error


def test_real_cancel_stops_at_once(real, example_image):
    llava = real.ctx.models.llava()
    cancel = threading.Event()
    got = []

    def on_text(text):
        got.append(text)
        cancel.set()

    started = time.monotonic()
    with pytest.raises(Cancelled):
        llava.ask([real.ctx.load_image(str(example_image))], "Describe this image in detail.", max_new_tokens=200,
                  on_text=on_text, cancel=cancel)
    assert len(got) <= 3 and time.monotonic() - started < 120
