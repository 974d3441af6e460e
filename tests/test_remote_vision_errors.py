"""Every way a server backend can fail is one line that names the fix: not reachable, model not
pulled or not served, a model without vision, 401/403 (the variable named, never the key),
429/5xx retried a bounded number of times, a stream cut mid-answer or without its final
message, malformed JSON, the first-token and read timeouts, `offline: true` and a remote URL.
The watcher counts server-down, 5xx and cut streams as transient."""

from __future__ import annotations

import socket
import time

import pytest

from remote_vision_helpers import (SECRET, backend, fake, make_loop, remote, vision_section,  # noqa: F401
                                   write_config)
from visionloop.tools import ToolCall
from visionloop.watch.runner import is_transient


def ask(fake, backend, tiny_cache, tmp_path, registry, example_image, top=None, **vision):
    """One caption through a fresh loop; its result (or the load error, as a result)."""
    config = write_config(tmp_path, tiny_cache, {**vision_section(backend, fake), **vision}, **(top or {}))
    loop = make_loop(config, registry, tmp_path / "out")
    try:
        (result,) = loop.call(ToolCall("caption", {"image": [str(example_image)]}))
    finally:
        loop.close()
    return result


@pytest.fixture
def call(fake, backend, tiny_cache, tmp_path, registry, example_image):
    def run(top=None, **vision):
        return ask(fake, backend, tiny_cache, tmp_path, registry, example_image, top, **vision)

    return run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def where(tmp_path, key):
    return f"profiles.remote.vision.{key} in {tmp_path / 'remote-config.yaml'}"


def test_server_not_running(call, backend):
    port = free_port()
    result = call(**({"host": f"http://127.0.0.1:{port}"} if backend == "ollama"
                     else {"base_url": f"http://127.0.0.1:{port}/v1"}))
    if backend == "ollama":
        assert result.error == f"cannot reach Ollama at http://127.0.0.1:{port}: is `ollama serve` running?"
    else:
        assert result.error.startswith(f"cannot reach the OpenAI-compatible server at http://127.0.0.1:{port}/v1: "
                                       "is the server running, and is profiles.remote.vision.base_url")
    assert is_transient(result.error)


def test_ollama_host_from_the_environment(fake, tiny_cache, tmp_path, registry, example_image, monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", fake.url.removeprefix("http://"))
    vision = {k: v for k, v in vision_section("ollama", fake).items() if k != "host"}
    loop = make_loop(write_config(tmp_path, tiny_cache, vision), registry, tmp_path / "out")
    try:
        (result,) = loop.call(ToolCall("caption", {"image": [str(example_image)]}))
    finally:
        loop.close()
    assert result.ok and result.data["base_url"] == fake.url


@pytest.mark.parametrize("value, url", [("", "http://127.0.0.1:11434"), ("0.0.0.0", "http://127.0.0.1:11434"),
                                        (":9999", "http://127.0.0.1:9999"), ("box:1234", "http://box:1234"),
                                        ("https://box.example", "https://box.example:443"),
                                        ("http://[::1]:11434", "http://[::1]:11434")])
def test_ollama_host_is_read_like_ollama_reads_it(value, url, monkeypatch):
    from visionloop.models.remote_common import ollama_base_url

    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    assert ollama_base_url(value or None) == url


def test_model_not_pulled_or_not_served(call, backend):
    if backend == "ollama":
        result = call(model="llava:34b")
        assert result.error == "llava:34b is not pulled: run `ollama pull llava:34b` (or `visionloop pull`)"
    else:
        result = call(model="llava-13b")
        assert result.error.startswith("llava-13b is not served by the OpenAI-compatible server at http://127.0.0.1:")
        assert "(it serves: llava-v1.6-34b, other-model)" in result.error
    assert not is_transient(result.error)


def test_model_removed_after_the_check(remote, fake, backend, example_image):
    remote.ctx.models.llava()  # checked and cached while it was there
    fake.models.pop("llava:7b")
    fake.openai_models.remove("llava-v1.6-34b")
    (result,) = remote.call(ToolCall("caption", {"image": [str(example_image)]}))
    assert result.error.startswith("llava:7b is not pulled" if backend == "ollama" else "llava-v1.6-34b is not served")


def test_model_without_vision(fake, tiny_cache, tmp_path, registry, example_image):
    result = ask(fake, "ollama", tiny_cache, tmp_path, registry, example_image, model="llama3")
    assert result.error == f"llama3 takes no images: use a LLaVA model ({where(tmp_path, 'model')})"


def test_openai_400_that_says_no_images(fake, tiny_cache, tmp_path, registry, example_image):
    fake.fail, fake.fail_message = [400], "image input is not supported - hint: you may need to provide the mmproj"
    result = ask(fake, "openai", tiny_cache, tmp_path, registry, example_image)
    assert result.error == f"llava-v1.6-34b takes no images: use a LLaVA model ({where(tmp_path, 'model')})"


def test_401_names_the_variable_never_the_key(call, fake, tmp_path, monkeypatch):
    fake.api_key = SECRET
    result = call()  # no key configured
    assert "refused the request (HTTP 401" in result.error
    assert f"name that variable as {where(tmp_path, 'api_key_env')}" in result.error
    monkeypatch.setenv("VL_TEST_KEY", SECRET[:-1] + "X")
    result = call(api_key_env="VL_TEST_KEY")
    assert result.error.endswith(f"check the API key in $VL_TEST_KEY (named by {where(tmp_path, 'api_key_env')})")
    assert SECRET[:-1] not in result.error
    monkeypatch.delenv("VL_TEST_KEY")
    result = call(api_key_env="VL_TEST_KEY")
    assert result.error.startswith(f"$VL_TEST_KEY (named by {where(tmp_path, 'api_key_env')}) is not set")
    monkeypatch.setenv("VL_TEST_KEY", SECRET)
    result = call(api_key_env="VL_TEST_KEY")
    assert result.ok, result.error
    assert fake.chats()[-1]["headers"]["Authorization"] == f"Bearer {SECRET}"
    assert SECRET not in str(result.to_json())


def test_5xx_and_429_are_retried_then_answered(call, fake):
    fake.fail = [503, 429, 502]
    started = time.monotonic()
    result = call()
    assert result.ok, result.error
    assert len(fake.chats()) == 4 and time.monotonic() - started < 5  # Retry-After: 0


def test_5xx_gives_up_after_the_retries(call, fake):
    fake.fail = [500] * 10
    result = call(retries=2)
    assert "server error (HTTP 500) after 3 attempts: failure 500; check the server's log" in result.error
    assert len(fake.chats()) == 3 and is_transient(result.error)
    fake.fail = [429] * 10
    result = call(retries=1)
    assert "is rate limiting (HTTP 429), still after 2 attempts: try again later" in result.error


def test_stream_cut_mid_answer(call, fake):
    fake.cut_after = 3
    result = call()
    assert " stopped mid-answer: the connection closed" in result.error and is_transient(result.error)
    assert "\n" not in result.error


def test_stream_without_its_final_message(call, fake):
    fake.no_done = True
    result = call()
    assert result.error.endswith("stopped mid-answer: the stream ended without its final message "
                                 f"(after {len(fake.answer)} characters); try again")


def test_malformed_json(call, fake):
    fake.malformed = True
    result = call()
    assert "sent malformed JSON" in result.error and "{this is not json" in result.error
    assert not is_transient(result.error)


def test_an_error_line_in_the_stream(call, fake):
    fake.error_line = "model runner crashed\nwith\x1b[31m colours"
    result = call()
    assert result.error.endswith("failed mid-answer: model runner crashed with [31m colours")


def test_first_token_timeout(call, fake, tmp_path):
    fake.first_delay = 3.0
    started = time.monotonic()
    result = call(first_token_timeout=0.3)
    assert time.monotonic() - started < 2.5
    assert f"sent no answer within 0.3 s ({where(tmp_path, 'first_token_timeout')}): the model may" in result.error
    assert is_transient(result.error)


def test_read_timeout_mid_answer(call, fake, tmp_path):
    fake.piece_delay = 2.0
    result = call(read_timeout=0.3)
    assert f"went silent for 0.3 s mid-answer ({where(tmp_path, 'read_timeout')})" in result.error


def test_offline_refuses_a_server_elsewhere_not_one_on_loopback(call, backend):
    remote_url = {"ollama": {"host": "http://192.0.2.7:11434"}, "openai": {"base_url": "http://192.0.2.7:8000/v1"}}
    result = call(top={"offline": True}, **remote_url[backend])
    assert "192.0.2.7" in result.error and "offline: true allows only servers on loopback" in result.error
    assert call(top={"offline": True}).ok  # 127.0.0.1 is this machine, not the network


def test_config_mistakes_are_one_line_each(tmp_path, tiny_cache, cli):
    from visionloop.config import load_config
    from visionloop.errors import ConfigError

    for vision, expected in (({"backend": "openai", "model": "x"}, "backend openai needs base_url"),
                             ({"host": "http://127.0.0.1:1"}, "host is for backend ollama, not transformers"),
                             ({"backend": "ollama", "model": "m", "revision": "abc"},
                              "revision is for backend transformers, not ollama"),
                             ({"backend": "openai", "model": "m", "base_url": "http://h/v1", "api_key_env": SECRET},
                              "api_key_env must name an environment variable")):
        path = write_config(tmp_path, tiny_cache, vision)
        with pytest.raises(ConfigError) as err:
            load_config(str(path))
        assert expected in str(err.value) and SECRET not in str(err.value)
        assert str(err.value).startswith(f"{path}:")
