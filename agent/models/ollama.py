"""The Ollama backend: LLaVA served by Ollama (`ollama pull llava:13b`), over its own API.

    POST /api/chat  {"model", "messages": [{"role", "content", "images": [base64, ...]}, ...],
                     "stream": true, "options": {"temperature", "top_p", "seed", "num_predict",
                     "num_ctx"}, "keep_alive"}
        -> NDJSON: {"message": {"role": "assistant", "content": "..."}, "done": false} ...
                   {"done": true, "done_reason": "stop", "eval_count": N, ...}
    GET  /api/tags  what is pulled (name, size, digest); POST /api/show  capabilities, context;
    POST /api/pull  {"model", "stream": true} -> NDJSON progress ({"status", "total", "completed"}).

At load (`check`) the server must answer, the model must be pulled (its digest is recorded)
and take images. A line with {"error": ...} or a stream that ends without `done: true` is an
error, never a short answer.
"""

from __future__ import annotations

import re

from visionloop.models.remote_common import DEFAULT_CONTEXT, RemoteBackend, takes_no_images
from visionloop.models.remote_http import HttpStatus, RemoteError, one_line


def same_model(name: str, wanted: str) -> bool:
    """Ollama's names: `llava` is `llava:latest`."""
    def full(n: str) -> str:
        return n if ":" in n.rsplit("/", 1)[-1] else f"{n}:latest"

    return full(name) == full(wanted)


def list_models(server) -> list[dict]:
    """What the server has pulled: name, size (bytes), digest, details."""
    tags = server.request("GET", "/api/tags")
    models = tags.get("models") if isinstance(tags, dict) else None
    if not isinstance(models, list):
        raise RemoteError(f"{server.at} answered /api/tags without a model list: is that really Ollama?")
    return [m for m in models if isinstance(m, dict) and isinstance(m.get("name") or m.get("model"), str)]


def find_model(server, wanted: str) -> dict | None:
    for entry in list_models(server):
        if same_model(entry.get("name") or entry.get("model"), wanted):
            return entry
    return None


def takes_images(show: dict) -> bool:
    """What /api/show says: `capabilities` (Ollama 0.6+), else a vision projector in the model."""
    caps = show.get("capabilities")
    if isinstance(caps, list):
        return "vision" in caps
    if show.get("projector_info"):
        return True
    families = (show.get("details") or {}).get("families")
    return "clip" in families if isinstance(families, list) else True  # nothing said: let the server decide


def context_of(show: dict) -> int | None:
    """The context the server runs the model with: the Modelfile's num_ctx, else the model's
    own length capped at Ollama's usual default window."""
    found = re.search(r"^\s*num_ctx\s+(\d+)", str(show.get("parameters") or ""), re.MULTILINE)
    if found:
        return int(found.group(1))
    info = show.get("model_info") or {}
    length = info.get(f"{info.get('general.architecture')}.context_length") if isinstance(info, dict) else None
    return min(int(length), DEFAULT_CONTEXT) if isinstance(length, int) and length > 0 else None


def pull(server, name: str, progress=None, cancel=None) -> dict:
    """`POST /api/pull`, streamed: `progress(status, completed, total)` for each line.
    Returns the last line ({"status": "success"})."""
    last: dict = {}
    for line in server.stream("/api/pull", {"model": name, "stream": True}, cancel):
        data = server.decode(line, "/api/pull")
        if not isinstance(data, dict):
            raise RemoteError(f"{server.at} sent malformed progress for /api/pull: {one_line(line, 60)!r}")
        if data.get("error"):
            raise RemoteError(f"{server.at} could not pull {name}: {one_line(data['error'])}")
        last = data
        if progress is not None:
            progress(str(data.get("status", "")), data.get("completed"), data.get("total"))
    if last.get("status") != "success":
        raise RemoteError(f"{server.at} stopped pulling {name} before it finished: try again", transient=True)
    return last


class OllamaBackend(RemoteBackend):
    chat_path = "/api/chat"

    def check(self) -> None:
        entry = find_model(self.server, self.model_id)
        if entry is None:
            raise self.not_pulled()
        self.digest = entry.get("digest") if isinstance(entry.get("digest"), str) else None
        show = self.server.request("POST", "/api/show", {"model": self.model_id})
        if not isinstance(show, dict):
            raise RemoteError(f"{self.server.at} answered /api/show with {type(show).__name__}: is that really Ollama?")
        if not takes_images(show):
            raise self.no_images()
        self.reported_context = context_of(show)

    def not_pulled(self) -> RemoteError:
        return RemoteError(f"{self.model_id} is not pulled: run `ollama pull {self.model_id}` (or `visionloop pull`)")

    def body(self, images, question, history, settings) -> dict:
        messages = []
        for asked, answered in history:
            messages += [{"role": "user", "content": asked}, {"role": "assistant", "content": answered}]
        messages.append({"role": "user", "content": question})
        if images:
            messages[0]["images"] = images  # the first question about them carries the pictures
        options = {"temperature": settings.get("temperature", 0.0), "num_predict": settings["max_new_tokens"]}
        for key in ("top_p", "seed"):
            if key in settings:
                options[key] = settings[key]
        if self.spec.context_length:
            options["num_ctx"] = self.spec.context_length
        body = {"model": self.model_id, "messages": messages, "stream": True, "options": options}
        keep = self.spec.keep_alive
        if keep is not None:
            body["keep_alive"] = int(keep) if isinstance(keep, str) and re.fullmatch(r"-?\d+", keep.strip()) else keep
        return body

    def parse(self, line: str) -> tuple[str, bool, dict]:
        data = self.server.decode(line, "/api/chat")
        if not isinstance(data, dict):
            raise RemoteError(f"{self.server.at} sent malformed JSON for /api/chat ({one_line(line, 60)!r}): "
                              f"is that really Ollama? (check {self.where('host')})")
        if data.get("error"):
            raise RemoteError(f"{self.server.at} failed mid-answer: {one_line(data['error'])}")
        message = data.get("message") if isinstance(data.get("message"), dict) else {}
        text = message.get("content") if isinstance(message.get("content"), str) else ""
        done = data.get("done") is True
        info = {"new_tokens": data["eval_count"]} if done and isinstance(data.get("eval_count"), int) else {}
        return text, done, info

    def status_error(self, exc: HttpStatus) -> RemoteError:
        if exc.status == 404:
            return self.not_pulled()
        if exc.status == 400 and takes_no_images(exc.message):
            return self.no_images()
        return super().status_error(exc)
