"""The LLaVA backend: one loaded vision-language model, shared by see, caption and read-text.

`AutoProcessor` + `AutoModelForImageTextToText` cover LLaVA 1.5 and LLaVA-NeXT; the prompt is
built with the processor's own chat template, so changing the model id in the profile is all
it takes to move between them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable

from agent.errors import Cancelled
from agent.models.loading import hub_kwargs, load_guarded, weights_kwargs

log = logging.getLogger(__name__)


@dataclass
class Generation:
    """One answer: the decoded `text`, the exact `prompt` given to the processor, and the
    generation `settings` needed to reproduce it."""

    text: str
    prompt: str
    settings: dict = field(default_factory=dict)
    new_tokens: int = 0
    seconds: float = 0.0


def _make_streamer(tokenizer, on_text: Callable[[str], None], cancel):
    from transformers import TextStreamer

    class _Callback(TextStreamer):
        def put(self, value):
            if cancel is not None and cancel.is_set():
                raise Cancelled("cancelled")
            super().put(value)

        def on_finalized_text(self, text: str, stream_end: bool = False):
            if text and on_text is not None:
                on_text(text)

    return _Callback(tokenizer, skip_prompt=True, skip_special_tokens=True)


class LlavaBackend:
    """Holds the processor and model; `generate()` answers one prompt about some images."""

    kind = "llava"

    def __init__(self, model_id: str, source: str, revision: str | None, device: str, dtype,
                 offline: bool = False, trust_remote_code: bool = False, allow_pickle: bool = False):
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.model_id = model_id  # what the profile names ("tiny" or a hub id)
        self.source = source  # what was actually loaded: hub id or local folder
        self.revision = revision
        self.device = device
        self.dtype = dtype
        kwargs = hub_kwargs(revision, offline, trust_remote_code)
        started = time.perf_counter()
        self.processor = load_guarded(source, lambda: AutoProcessor.from_pretrained(source, **kwargs))
        self.model = load_guarded(source, lambda: AutoModelForImageTextToText.from_pretrained(
            source, dtype=dtype, **weights_kwargs(allow_pickle), **kwargs))
        self.model.to(device).eval()
        self.load_seconds = time.perf_counter() - started
        log.info("loaded %s on %s in %.2fs", source, device, self.load_seconds)

    @property
    def context_length(self) -> int:
        cfg = getattr(self.model.config, "text_config", self.model.config)
        return int(getattr(cfg, "max_position_embeddings", 4096))

    def build_prompt(self, question: str, n_images: int, history: list[tuple[str, str]] = ()) -> str:
        """The exact prompt text: earlier (question, answer) turns, then this question with
        its images, through the processor's chat template."""
        conversation = []
        for asked, answered in history:
            conversation.append({"role": "user", "content": [{"type": "text", "text": asked}]})
            conversation.append({"role": "assistant", "content": [{"type": "text", "text": answered}]})
        content = [{"type": "image"} for _ in range(n_images)] + [{"type": "text", "text": question}]
        conversation.append({"role": "user", "content": content})
        return self.processor.apply_chat_template(conversation, add_generation_prompt=True)

    def count_tokens(self, prompt: str, n_images: int) -> int:
        """Prompt length in tokens, image tokens included (for trimming chat history)."""
        ids = self.processor.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        per_image = getattr(self.processor, "num_image_tokens", None) or 576
        return len(ids) + n_images * per_image

    def generate(self, images, prompt: str, max_new_tokens: int = 256, temperature: float = 0.0,
                 top_p: float = 1.0, seed: int | None = None, on_text: Callable[[str], None] | None = None,
                 cancel=None) -> Generation:
        """Answer `prompt` (already templated) about `images` (PIL, RGB).

        Greedy by default; `temperature > 0` samples, seeded by `seed` for reproducibility.
        `on_text` receives the answer as it is decoded (for streaming in the chat).
        """
        import torch

        # 1. Encode the prompt and the images together.
        inputs = self.processor(images=list(images) or None, text=prompt, return_tensors="pt")
        inputs = inputs.to(self.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        # 2. Decoding settings: the exact ones recorded in the result.
        settings = {"max_new_tokens": int(max_new_tokens), "do_sample": temperature > 0}
        if temperature > 0:
            settings.update(temperature=float(temperature), top_p=float(top_p))
        if seed is not None:
            torch.manual_seed(int(seed))
        streamer = _make_streamer(self.processor.tokenizer, on_text, cancel) if on_text or cancel is not None else None
        # 3. Generate and keep only the new tokens.
        started = time.perf_counter()
        with torch.inference_mode():
            output = self.model.generate(**inputs, **settings, streamer=streamer)
        new = output[0, inputs["input_ids"].shape[1]:]
        text = self.processor.decode(new, skip_special_tokens=True).strip()
        recorded = dict(settings, seed=seed) if seed is not None else settings
        return Generation(text=text, prompt=prompt, settings=recorded, new_tokens=int(new.shape[0]),
                          seconds=time.perf_counter() - started)

