"""The vision backend interface: what every way of running LLaVA gives the tools and the chat.

Three implementations: `LlavaBackend` (transformers, in this process, `llava.py`),
`OllamaBackend` (an Ollama server, `ollama.py`) and `OpenAIBackend` (an OpenAI-compatible
server, `openai_compat.py`). `ModelCache.llava()` hands out the one the profile names
(`vision.backend`); `toolkit/vision.py` (see, caption, read-text, restyle, the chat) only ever
calls the methods below, never a backend class.

    ask(images, question, history, ...)  -> Generation   the answer, streamed through `on_text`,
                                                         stopped by `cancel` (a threading.Event)
    build_prompt(question, n, history)   -> str          the exact prompt, as recorded in `data`
    image_tokens(images) / count_tokens(prompt, n)       prompt length in tokens (exact for
                                                         transformers, an estimate for servers)
    prompt_tokens(...) / fits(...)                       what the chat trims its history with
    context_length, placeholders                         the model's context; reserved markers
    describe()                                           backend, base_url, model, digest
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

#: (question, answer) pairs of a conversation's earlier turns, oldest first
Turns = Sequence[tuple[str, str]]


@dataclass
class Generation:
    """One answer: the decoded `text`, the exact `prompt` it answered, and the generation
    `settings` needed to reproduce it (as sent: to `generate`, or to the server)."""

    text: str
    prompt: str
    settings: dict = field(default_factory=dict)
    new_tokens: int = 0
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)  # what a server adds to `data` (e.g. the sizes sent)


class VisionBackend:
    """The interface (with the parts every backend shares). Subclasses set the attributes and
    implement `ask`, `build_prompt`, `image_tokens`, `count_tokens` and `context_length`."""

    kind = "llava"
    backend = "?"  # transformers | ollama | openai
    model_id: str = ""  # what the profile names ("tiny", a hub id, "llava:13b")
    source: str = ""  # what answers: the hub id or folder loaded, or the server's base URL
    revision: str | None = None  # the hub revision, or the server's digest of the model
    device: str = "remote"
    base_url: str | None = None
    digest: str | None = None

    @property
    def context_length(self) -> int:
        raise NotImplementedError

    @property
    def placeholders(self) -> list[str]:
        """Text markers that stand for images in this model's prompt: refused in a question."""
        return []

    def build_prompt(self, question: str, n_images: int, history: Turns = ()) -> str:
        raise NotImplementedError

    def image_tokens(self, images) -> int:
        raise NotImplementedError

    def count_tokens(self, prompt: str, image_tokens: int = 0) -> int:
        raise NotImplementedError

    def prompt_tokens(self, question: str, n_images: int, history: Turns, image_tokens: int) -> int:
        """The length of the prompt that `ask` would send, in tokens."""
        return self.count_tokens(self.build_prompt(question, n_images, history), image_tokens)

    def fits(self, prompt_tokens: int, max_new_tokens: int) -> bool:
        """Does a prompt of `prompt_tokens` leave room for `max_new_tokens` in the context?"""
        return prompt_tokens + max_new_tokens <= self.context_length

    def ask(self, images, question: str, history: Turns = (), *, max_new_tokens: int = 256,
            temperature: float = 0.0, top_p: float = 1.0, seed: int | None = None,
            on_text: Callable[[str], None] | None = None, cancel=None) -> Generation:
        """Answer `question` about `images` (PIL, RGB, as the safe loader read them) after the
        earlier `history` turns about the same images. Greedy unless `temperature > 0`;
        `on_text` gets the answer as it arrives; a set `cancel` event stops it (`Cancelled`)."""
        raise NotImplementedError

    def describe(self) -> dict:
        """What answered, for `data` and manifests: backend, base_url, model, digest."""
        return {"backend": self.backend, "base_url": self.base_url, "model": self.source, "digest": self.digest}
