"""Fixtures and helpers of the server-backend tests (tests/test_remote_vision*.py): the fake
server, a config whose `remote` profile points the vision side at it (the diffusion side stays
tiny), and a loop on that config. Test modules import the fixtures they use by name."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
import yaml
from PIL import Image

from remote_vision_fakes import DIGEST as DIGEST_OLLAMA, FakeServer  # noqa: F401  (re-exported)

ROOT = Path(__file__).resolve().parent.parent
SECRET = "sk-visionloop-test-Z9q8w7e6r5t4"  # an API key that must never be printed

OLLAMA_MODEL = "llava:7b"
OPENAI_MODEL = "llava-v1.6-34b"


def vision_section(backend: str, server: FakeServer, **extra) -> dict:
    base = {"ollama": {"backend": "ollama", "model": OLLAMA_MODEL, "host": server.url},
            "openai": {"backend": "openai", "model": OPENAI_MODEL, "base_url": server.url + "/v1"}}[backend]
    return {**base, "retry_backoff": 0.01, "max_new_tokens": 24, **extra}


def write_config(folder: Path, tiny_cache: Path, vision: dict, **top) -> Path:
    """A config file with profile `remote` (vision: `vision`; diffusion: tiny) selected."""
    path = folder / "remote-config.yaml"
    data = {"profile": "remote", "cache_dir": str(tiny_cache), "output": str(folder / "out"),
            "workflows": str(ROOT / "workflows"),
            "profiles": {"remote": {"vision": vision, "diffusion": {"model": "tiny", "steps": 2, "width": 64,
                                                                    "height": 64}}},
            **top}
    path.write_text(yaml.safe_dump(data))
    return path


def make_loop(config_path: Path, registry, out: Path):
    from visionloop.config import load_config
    from visionloop.context import Context
    from visionloop.loop import Loop

    return Loop(registry, Context.create(load_config(str(config_path)), out))


def sent_images(request: dict) -> list[Image.Image]:
    """The pictures a chat request carried, decoded (Ollama: raw base64; OpenAI: data URLs)."""
    body = request["body"]
    found = []
    for message in body["messages"]:
        if "images" in message:
            found += message["images"]
        if isinstance(message.get("content"), list):
            for part in message["content"]:
                if part.get("type") == "image_url":
                    url = part["image_url"]["url"]
                    assert url.startswith(("data:image/png;base64,", "data:image/jpeg;base64,"))
                    found.append(url.split(",", 1)[1])
    return [Image.open(io.BytesIO(base64.b64decode(data, validate=True))) for data in found]


@pytest.fixture
def fake():
    with FakeServer() as server:
        yield server


@pytest.fixture(params=["ollama", "openai"])
def backend(request) -> str:
    return request.param


@pytest.fixture
def remote(fake, backend, tiny_cache, tmp_path, registry):
    """A loop whose vision backend is the fake server (both wire formats, by `backend`)."""
    loop = make_loop(write_config(tmp_path, tiny_cache, vision_section(backend, fake)), registry, tmp_path / "out")
    yield loop
    loop.close()
