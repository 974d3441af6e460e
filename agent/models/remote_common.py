"""What the server backends (Ollama, OpenAI-compatible) share: where the server is (and
whether `offline: true` allows it), how images travel, and `RemoteBackend`, the part of the
`VisionBackend` interface that does not depend on the wire format.

Images go as the safe loader read them (EXIF applied, RGB), scaled down to fit
`vision.max_side` (a 40-megapixel photo is not shipped whole), re-encoded as PNG (lossless, the
default) or JPEG, in base64. Token counts are estimates here (no tokenizer on this side): text at
three bytes a token, rounded up, and 576 tokens an image (LLaVA's 24 x 24 patches); the context
is `vision.context_length`, else what the server reports (Ollama: at most 4096, its usual
default window), else 4096.
"""

from __future__ import annotations

import base64
import io
import ipaddress
import os
import re
import time
from urllib.parse import urlsplit

from visionloop.errors import ModelError
from visionloop.models.remote_http import HttpStatus, RemoteError, Server, shown
from visionloop.models.vision_backend import Generation, Turns, VisionBackend

DEFAULT_OLLAMA = "http://127.0.0.1:11434"
DEFAULT_CONTEXT = 4096
IMAGE_TOKENS = 576
BYTES_PER_TOKEN = 3


def ollama_base_url(host: str | None) -> str:
    """Ollama's address as a base URL, from `vision.host`, else $OLLAMA_HOST, else the default;
    read the way Ollama reads OLLAMA_HOST: `host`, `host:port`, `:port`, `http(s)://host[:port]`
    (port 11434 unless a scheme is given; 0.0.0.0, the address a server listens on, means here)."""
    raw = (host or os.environ.get("OLLAMA_HOST") or "").strip()
    if not raw:
        return DEFAULT_OLLAMA
    scheme, explicit = ("http", False)
    if "://" in raw:
        scheme, raw = raw.split("://", 1)
        explicit = True
    hostport, _, path = raw.partition("/")
    try:
        parts = urlsplit(f"{scheme}://{hostport}")
        port = parts.port
    except ValueError:
        raise ModelError(f"{host or os.environ.get('OLLAMA_HOST')!r} is not an Ollama address "
                         "(host, host:port or http://host:port)") from None
    name = parts.hostname or "127.0.0.1"
    if name in ("0.0.0.0", "::"):
        name = "127.0.0.1"
    port = port or ({"http": 80, "https": 443}.get(scheme, 11434) if explicit else 11434)
    name = f"[{name}]" if ":" in name else name
    return f"{scheme}://{name}:{port}" + (f"/{path.strip('/')}" if path.strip("/") else "")


def is_loopback(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def vision_where(config):
    """`where(key)` for the active profile's vision section: "profiles.NAME.vision.KEY in FILE"."""
    def where(key: str) -> str:
        text = f"profiles.{config.profile}.vision.{key}"
        return f"{text} in {config.source}" if config.source else text

    return where


def make_server(config, spec, where) -> Server:
    """The `Server` the profile's vision section names; `where(key)` words a config key for
    messages. Refuses, in one line, a bad URL, a server off this machine under `offline: true`,
    and an API key variable that is named but not set."""
    if spec.backend == "ollama":
        url, name, key = ollama_base_url(spec.host), "Ollama", "host"
        hint = "is `ollama serve` running?"
    else:
        url, name, key = (spec.base_url or "").strip(), "the OpenAI-compatible server", "base_url"
        hint = f"is the server running, and is {where('base_url')} right?"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ModelError(f"{where(key)}: {shown(url)!r} is not an http:// or https:// address")
    loopback = is_loopback(url)
    if config.offline and not loopback:
        raise ModelError(f"{name} at {shown(url)} is not on this machine, and offline: true allows only servers on "
                         f"loopback (127.0.0.1, ::1, localhost): set offline: false, or change {where(key)}")
    var = spec.api_key_env
    if var and not os.environ.get(var):
        raise ModelError(f"${var} (named by {where('api_key_env')}) is not set: export it with the server's "
                         "API key, or remove api_key_env")
    return Server(url, name, hint, spec, where, loopback, key)


def encode_image(image, max_side: int, fmt: str = "png") -> tuple[str, tuple[int, int], int]:
    """`image` (PIL) scaled down to fit `max_side` (never up), encoded as PNG or JPEG, in
    base64 (no `data:` prefix); returns it, the size sent and its base64 length in bytes."""
    from PIL import Image

    image = image if image.mode == "RGB" else image.convert("RGB")
    width, height = image.size
    if max(width, height) > max_side:
        scale = max_side / max(width, height)
        image = image.resize((max(1, round(width * scale)), max(1, round(height * scale))), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    if fmt == "jpeg":
        image.save(buffer, "JPEG", quality=92)
    else:
        image.save(buffer, "PNG", compress_level=1)  # fast; the pixels are the same at every level
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return data, image.size, len(data)


class RemoteBackend(VisionBackend):
    """A LLaVA behind a server. Subclasses give `chat_path`, `check()` (reachable, model
    there, takes images: sets `digest` and `reported_context`), `body()`, `parse()` and
    `status_error()`."""

    chat_path = ""

    def __init__(self, config, spec, where):
        self.spec = spec
        self.where = where
        self.server = make_server(config, spec, where)
        self.backend = spec.backend
        self.model_id = spec.model
        self.base_url = self.source = shown(self.server.base_url)
        self.reported_context: int | None = None
        self.digest = None
        try:
            self.check()
        except HttpStatus as exc:
            raise self.status_error(exc) from None
        self.revision = self.digest

    # -- the interface -----------------------------------------------------------------------
    @property
    def context_length(self) -> int:
        return self.spec.context_length or self.reported_context or DEFAULT_CONTEXT

    def build_prompt(self, question: str, n_images: int, history: Turns = ()) -> str:
        """The conversation as sent, in words: the images travel with the first user turn."""
        marks = " ".join(f"[image {i + 1}]" for i in range(n_images))
        turns = [*history, (question, None)]
        lines = []
        for i, (asked, answered) in enumerate(turns):
            lines.append(f"user: {marks} {asked}" if i == 0 and marks else f"user: {asked}")
            if answered is not None:
                lines.append(f"assistant: {answered}")
        return "\n".join(lines)

    def image_tokens(self, images) -> int:
        return IMAGE_TOKENS * len(images)

    def count_tokens(self, prompt: str, image_tokens: int = 0) -> int:
        return -(-len(prompt.encode("utf-8")) // BYTES_PER_TOKEN) + image_tokens

    def describe(self) -> dict:
        return {"backend": self.backend, "base_url": self.base_url, "model": self.model_id, "digest": self.digest}

    def ask(self, images, question: str, history: Turns = (), *, max_new_tokens: int = 256,
            temperature: float = 0.0, top_p: float = 1.0, seed: int | None = None, on_text=None,
            cancel=None) -> Generation:
        encoded = [encode_image(image, self.spec.max_side, self.spec.image_format) for image in images]
        settings = {"max_new_tokens": int(max_new_tokens), "do_sample": temperature > 0}
        if temperature > 0:
            settings.update(temperature=float(temperature), top_p=float(top_p))
        if seed is not None:  # recorded as given (a replay passes it back)
            settings["seed"] = int(seed)
        # greedy requests carry a fixed seed too: a server that samples anyway still repeats itself
        sent = settings if seed is not None or temperature > 0 else {**settings, "seed": 0}
        body = self.body([data for data, _, _ in encoded], question, list(history), sent)
        emit = _leading_space_trimmed(on_text)
        pieces, stats, done = [], {}, False
        started = time.perf_counter()
        try:
            for line in self.server.stream(self.chat_path, body, cancel):
                text, done, info = self.parse(line)
                stats.update(info)
                if text:
                    pieces.append(text)
                    emit(text)
                if done:
                    break
        except HttpStatus as exc:
            raise self.status_error(exc) from None
        if not done:
            raise RemoteError(f"{self.server.at} stopped mid-answer: the stream ended without its final message "
                              f"(after {len(''.join(pieces))} characters); try again", transient=True)
        return Generation(text="".join(pieces).strip(), prompt=self.build_prompt(question, len(images), history),
                          settings=settings, new_tokens=int(stats.get("new_tokens") or len(pieces)),
                          seconds=time.perf_counter() - started,
                          extra={"sent_sizes": [list(size) for _, size, _ in encoded]})

    # -- what the wire format decides ---------------------------------------------------------
    def check(self) -> None:
        raise NotImplementedError

    def body(self, images: list[str], question: str, history: list[tuple[str, str]], settings: dict) -> dict:
        raise NotImplementedError

    def parse(self, line: str) -> tuple[str, bool, dict]:
        """One line of the stream: (text, the last message?, what it reports: new_tokens)."""
        raise NotImplementedError

    def status_error(self, exc: HttpStatus) -> RemoteError:
        return RemoteError(f"{self.server.at} refused the request (HTTP {exc.status}): {exc.message}", status=exc.status)

    def no_images(self) -> RemoteError:
        return RemoteError(f"{self.model_id} takes no images: use a LLaVA model ({self.where('model')})")


_NO_IMAGES = re.compile(r"(?:\bnot|\bno|n't|\bcannot|\bunsupported)\b.{0,40}\b(?:images?|vision|multi-?modal)\b|mmproj",
                        re.IGNORECASE)


def takes_no_images(message: str) -> bool:
    """A 400 that says the model cannot read images (Ollama, vLLM, llama.cpp wordings)."""
    return bool(_NO_IMAGES.search(message))


def _leading_space_trimmed(on_text):
    """`on_text` without the blanks an answer starts with, so the stream reads as the result."""
    begun = False

    def emit(text: str) -> None:
        nonlocal begun
        if not begun:
            text = text.lstrip()
            if not text:
                return
            begun = True
        if on_text is not None:
            on_text(text)

    return emit
