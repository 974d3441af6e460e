"""The OpenAI-compatible backend: LLaVA behind vLLM, llama.cpp's server, LM Studio, LocalAI or
Ollama's /v1, over the Chat Completions API.

    POST {base_url}/chat/completions  {"model", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}},
            {"type": "text", "text": "..."}]}, ...], "stream": true,
            "stream_options": {"include_usage": true}, "max_tokens", "temperature", "top_p", "seed"}
        -> server-sent events: `data: {"choices": [{"delta": {"content": "..."}}]}` ... then a
           usage chunk (empty `choices`), then `data: [DONE]`
    GET  {base_url}/models  -> {"data": [{"id": ...}, ...]} (vLLM adds max_model_len)

Images always travel inline (a data URL): the one form every such server accepts. A stream
that ends without `[DONE]` is an error, never a short answer.
"""

from __future__ import annotations

import logging

from visionloop.models.remote_common import RemoteBackend, takes_no_images
from visionloop.models.remote_http import HttpStatus, RemoteError, one_line

log = logging.getLogger(__name__)


def list_models(server) -> list[dict]:
    """What the server serves: [{"id": ..., ...}]."""
    listing = server.request("GET", "/models")
    models = listing.get("data") if isinstance(listing, dict) else None
    if not isinstance(models, list):
        raise RemoteError(f"{server.at} answered /models without a model list: is {server.base_url} an "
                          "OpenAI-compatible API (it usually ends in /v1)?")
    return [m for m in models if isinstance(m, dict) and isinstance(m.get("id"), str)]


class OpenAIBackend(RemoteBackend):
    chat_path = "/chat/completions"

    def check(self) -> None:
        try:
            models = list_models(self.server)
        except HttpStatus as exc:
            if exc.status != 404:
                raise
            log.info("%s has no /models; the model is checked on the first question", self.server.at)
            return
        entry = next((m for m in models if m["id"] == self.model_id), None)
        if entry is not None:
            length = entry.get("max_model_len")
            self.reported_context = length if isinstance(length, int) and length > 0 else None
            return
        served = ", ".join(m["id"] for m in models[:8]) or "nothing"
        if len(models) != 1:  # one model: llama.cpp's server answers to any name
            raise self.not_served(served)
        log.warning("%s serves %s, not %s; asking it anyway", self.server.at, served, self.model_id)

    def not_served(self, served: str | None = None) -> RemoteError:
        serves = f" (it serves: {served})" if served else ""
        return RemoteError(f"{self.model_id} is not served by {self.server.at}{serves}: change "
                           f"{self.where('model')} (`visionloop models` lists what it serves)")

    def body(self, images, question, history, settings) -> dict:
        mime = "image/jpeg" if self.spec.image_format == "jpeg" else "image/png"
        pictures = [{"type": "image_url", "image_url": {"url": f"data:{mime};base64,{data}"}} for data in images]
        messages = []
        for asked, answered in history:
            messages += [{"role": "user", "content": [{"type": "text", "text": asked}]},
                         {"role": "assistant", "content": answered}]
        messages.append({"role": "user", "content": [{"type": "text", "text": question}]})
        messages[0]["content"] = pictures + messages[0]["content"]  # the first question carries the pictures
        body = {"model": self.model_id, "messages": messages, "stream": True,
                "stream_options": {"include_usage": True}, "max_tokens": settings["max_new_tokens"],
                "temperature": settings.get("temperature", 0.0)}
        for key in ("top_p", "seed"):
            if key in settings:
                body[key] = settings[key]
        return body

    def parse(self, line: str) -> tuple[str, bool, dict]:
        if not line.startswith("data:"):
            return "", False, {}  # `: comment`, `event:`, `id:`, `retry:` lines
        payload = line[5:].strip()
        if payload == "[DONE]":
            return "", True, {}
        data = self.server.decode(payload, "/chat/completions")
        if not isinstance(data, dict):
            raise RemoteError(f"{self.server.at} sent malformed JSON for /chat/completions "
                              f"({one_line(payload, 60)!r}): check {self.where('base_url')}")
        if data.get("error"):
            error = data["error"]
            raise RemoteError(f"{self.server.at} failed mid-answer: "
                              f"{one_line(error.get('message', error) if isinstance(error, dict) else error)}")
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        info = {"new_tokens": usage["completion_tokens"]} if isinstance(usage.get("completion_tokens"), int) else {}
        text = ""
        for choice in data.get("choices") or []:
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if isinstance(delta, dict) and isinstance(delta.get("content"), str):
                text += delta["content"]
        return text, False, info

    def status_error(self, exc: HttpStatus) -> RemoteError:
        low = exc.message.lower()
        if exc.status == 404 and "model" in low:
            return self.not_served()
        if exc.status == 404:
            return RemoteError(f"{self.server.at}{self.chat_path} was not found (HTTP 404): does "
                               f"{self.where('base_url')} end in /v1?")
        if exc.status == 400 and takes_no_images(exc.message):
            return self.no_images()
        return super().status_error(exc)
