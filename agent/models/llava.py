"""The transformers LLaVA backend: one vision-language model loaded in this process, shared by
see, caption, read-text and restyle (a `VisionBackend`; `ollama.py` and `openai_compat.py` are the
server backends).

`AutoProcessor` + `AutoModelForImageTextToText` cover LLaVA 1.5 and LLaVA-NeXT; the prompt is
built with the processor's own chat template, so changing the model id in the profile is all
it takes to move between them.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from visionloop.errors import Cancelled
from visionloop.models.loading import hub_kwargs, load_guarded, quiet_loading, weights_kwargs
from visionloop.models.vision_backend import Generation, Turns, VisionBackend

__all__ = ["Generation", "LlavaBackend"]

log = logging.getLogger(__name__)


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


class LlavaBackend(VisionBackend):
    """The transformers backend: holds the processor and model; `ask()` answers a question
    about some images (`generate()` one already templated prompt)."""

    backend = "transformers"

    def __init__(self, model_id: str, source: str, revision: str | None, device: str, dtype,
                 offline: bool = False, trust_remote_code: bool = False, allow_pickle: bool = False,
                 revision_key: str = "revision", quantize: str = "none", feature_cache: int = 8):
        from transformers import AutoModelForImageTextToText, AutoProcessor

        from visionloop.models.llava_speed import ImageFeatureCache, quantize_int8

        self.model_id = model_id  # what the profile names ("tiny" or a hub id)
        self.source = source  # what was actually loaded: hub id or local folder
        self.revision = revision
        self.device = device
        self.dtype = dtype
        kwargs = hub_kwargs(revision, offline, trust_remote_code, key=revision_key)
        started = time.perf_counter()
        with quiet_loading():
            self.processor = load_guarded(source, lambda: AutoProcessor.from_pretrained(source, **kwargs))
            self.model = load_guarded(source, lambda: AutoModelForImageTextToText.from_pretrained(
                source, dtype=dtype, **weights_kwargs(allow_pickle), **kwargs))
        self.model.to(device).eval()
        self.quantize = quantize  # none | int8: the language model's linear layers (llava_speed.py)
        if quantize == "int8":
            quantize_int8(self.model)
        self.features = ImageFeatureCache(self.model, size=feature_cache)  # follow-ups skip the vision tower
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
        for asked, answered in self._clean(history):
            conversation.append({"role": "user", "content": [{"type": "text", "text": asked}]})
            conversation.append({"role": "assistant", "content": [{"type": "text", "text": answered}]})
        content = [{"type": "image"} for _ in range(n_images)] + [{"type": "text", "text": question}]
        conversation.append({"role": "user", "content": content})
        return self.processor.apply_chat_template(conversation, add_generation_prompt=True)

    def _clean(self, history):
        """Earlier turns without image placeholders: a decoded answer can spell one out, and the
        processor would then look for a picture that is not there."""
        for asked, answered in history:
            for mark in self.placeholders:
                asked, answered = asked.replace(mark, ""), answered.replace(mark, "")
            yield asked, answered

    @property
    def placeholders(self) -> list[str]:
        """The text markers the processor replaces with image (or video) tokens: in a question
        they would stand for pictures that were never given."""
        return [t for t in (getattr(self.processor, "image_token", None), getattr(self.processor, "video_token", None))
                if isinstance(t, str) and t]

    def image_tokens(self, images) -> int:
        """How many tokens `images` take in a prompt, counted by the processor itself: a fixed
        number per image for LLaVA-1.5 (576; 16 for the tiny model), more and depending on the
        image's size for LLaVA-NeXT (its tiles). Placeholders not included."""
        if not images:
            return 0
        sizes = [(image.height, image.width) for image in images]
        try:  # the processor's own arithmetic, without preparing the pixels
            counts = self.processor._get_num_multimodal_tokens(image_sizes=sizes).num_image_tokens
            if len(counts) == len(images):
                return int(sum(counts))
        except (AttributeError, TypeError, KeyError, ValueError, NotImplementedError):
            pass
        probe = self.build_prompt("", len(images))  # else: expand a prompt of only the images
        expanded = len(self.processor(images=list(images), text=probe)["input_ids"][0])
        return expanded - self.count_tokens(probe)

    def count_tokens(self, prompt: str, image_tokens: int = 0) -> int:
        """Prompt length in tokens as `generate` gives it to the model: the processor's
        tokenizer on the templated `prompt`, with each image placeholder replaced by the
        `image_tokens` (from `image_tokens(images)`) it expands to."""
        tokenizer = self.processor.tokenizer
        ids = tokenizer(prompt)["input_ids"]
        marks = {tokenizer.convert_tokens_to_ids(t) for t in self.placeholders} - {None, tokenizer.unk_token_id}
        return len(ids) - sum(1 for i in ids if i in marks) + image_tokens

    def ask(self, images, question: str, history: Turns = (), *, max_new_tokens: int = 256,
            temperature: float = 0.0, top_p: float = 1.0, seed: int | None = None,
            on_text: Callable[[str], None] | None = None, cancel=None) -> Generation:
        prompt = self.build_prompt(question, len(images), history)
        return self.generate(images, prompt, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                             seed=seed, on_text=on_text, cancel=cancel)

    def generate_many(self, items, max_new_tokens: int = 256) -> list[Generation]:
        """Greedy answers to several already templated prompts, each with its own images
        (`items`: (images, prompt) pairs), in one batched `generate` call: the prompts are
        padded on the left so that every answer starts at the same position."""
        import torch

        images = [picture for pictures, _ in items for picture in pictures]
        prompts = [prompt for _, prompt in items]
        tokenizer = self.processor.tokenizer
        side, tokenizer.padding_side = tokenizer.padding_side, "left"
        try:
            inputs = self.processor(images=images or None, text=prompts, padding=True, return_tensors="pt")
        finally:
            tokenizer.padding_side = side
        inputs = inputs.to(self.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        settings = {"max_new_tokens": int(max_new_tokens), "do_sample": False}
        started = time.perf_counter()
        with torch.inference_mode():
            output = self.model.generate(**inputs, **settings, pad_token_id=tokenizer.pad_token_id)
        seconds = (time.perf_counter() - started) / len(items)
        stops = {tokenizer.pad_token_id, tokenizer.eos_token_id} - {None}
        answers = []
        for row, prompt in zip(output[:, inputs["input_ids"].shape[1]:], prompts):
            ids = row.tolist()
            ends = [i for i, t in enumerate(ids) if t in stops]
            kept = ids[:ends[0] + 1] if ends else ids  # the answer and its end token, as generate() alone stops
            text = self.processor.decode(kept, skip_special_tokens=True).strip()
            answers.append(Generation(text=text, prompt=prompt, settings=dict(settings), new_tokens=len(kept),
                                      seconds=seconds, extra={"dtype": str(self.dtype).replace("torch.", ""),
                                                              "quantize": self.quantize, "batch": len(items)}))
        return answers

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
        hits = self.features.hits
        with torch.inference_mode():
            output = self.model.generate(**inputs, **settings, streamer=streamer)
        new = output[0, inputs["input_ids"].shape[1]:]
        text = self.processor.decode(new, skip_special_tokens=True).strip()
        recorded = dict(settings, seed=seed) if seed is not None else settings
        extra = {"dtype": str(self.dtype).replace("torch.", ""), "quantize": self.quantize}
        if images:
            extra["image_features"] = "reused" if self.features.hits > hits else "computed"
        return Generation(text=text, prompt=prompt, settings=recorded, new_tokens=int(new.shape[0]),
                          seconds=time.perf_counter() - started, extra=extra)

