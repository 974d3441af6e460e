"""OpenAI-shaped routes under `/v1`, so that OpenAI client libraries and chat front-ends use the
local models without code:

    GET  /v1/models
    POST /v1/images/generations   {"prompt", "n", "size": "WxH", "response_format": "b64_json"|"url"}
                                  -> `draw` (extras: negative_prompt, steps, guidance, seed, scheduler)
    POST /v1/chat/completions     {"messages": [...], "stream"} with `image_url` parts (data: URLs)
                                  -> `see` with the images, the last question and the earlier turns

Both are jobs like any other (the same queue, 429 when it is full, events, history). Errors
have OpenAI's shape: `{"error": {"message", "type", "code"}}`. Images are never fetched from
the network: an `image_url` must be a `data:` URL.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import json
import time

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from visionloop.server.files import Refused, save_upload
from visionloop.server.jobs import QueueFull
from visionloop.server.responses import JSON

router = APIRouter(prefix="/v1")
MODEL = "visionloop"
MAX_IMAGES = 8


def _error(status: int, message: str, kind: str = "invalid_request_error", code: str | None = None) -> JSON:
    return JSON({"error": {"message": message, "type": kind, "param": None, "code": code}}, status_code=status)


async def _body(request: Request) -> dict:
    try:
        data = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise Refused("the body must be a JSON object", 400) from None
    if not isinstance(data, dict):
        raise Refused("the body must be a JSON object", 400)
    return data


def _guarded(handler):
    """OpenAI's error shape for everything the handler refuses."""
    import functools

    from visionloop.errors import VisionloopError

    @functools.wraps(handler)
    async def wrapper(request: Request):
        try:
            return await handler(request)
        except QueueFull as exc:
            return _error(429, str(exc), "rate_limit_error", "queue_full")
        except Refused as exc:
            return _error(exc.status, str(exc))
        except VisionloopError as exc:
            return _error(400, str(exc).splitlines()[0])

    return wrapper


@router.get("/models")
def models(request: Request):
    server = request.app.state.server
    names = [MODEL] + [f"{MODEL}/{t}" for t in ("see", "draw") if t in server.registry.tools]
    return {"object": "list", "data": [{"id": n, "object": "model", "created": 0, "owned_by": "visionloop"}
                                       for n in names]}


# --- images -------------------------------------------------------------------------------------

@router.post("/images/generations")
@_guarded
async def generations(request: Request):
    from visionloop.values import check_args

    server = request.app.state.server
    body = await _body(request)
    tool = server.registry.tools.get("draw")
    if tool is None:
        raise Refused("the draw tool is not installed", 503)
    if not isinstance(body.get("prompt"), str) or not body["prompt"].strip():
        raise Refused("prompt: required", 400)
    args = {"prompt": body["prompt"], "count": body.get("n") or 1}
    size = body.get("size")
    if size not in (None, "auto"):
        args["size"] = size
    for key in ("negative_prompt", "steps", "guidance", "seed", "scheduler"):
        if body.get(key) is not None:
            args[key] = body[key]
    fmt = body.get("response_format") or "b64_json"
    if fmt not in ("b64_json", "url"):
        raise Refused("response_format must be b64_json or url", 400)
    check_args(tool, args)
    job = await server.jobs.wait(server.submit_tool(tool, args))
    if job.result is None or job.error:
        return _error(422 if job.status != "cancelled" else 409, job.error or job.status, "server_error")
    result = job.result
    base = str(request.base_url)
    data = []
    for path, seed in zip(result["images"], result["data"].get("seeds") or [result["data"].get("seed")]):
        item = {"revised_prompt": result["data"].get("prompt"), "seed": seed}
        if fmt == "b64_json":
            item["b64_json"] = base64.b64encode(await run_in_threadpool(_read, path)).decode()
        else:
            item["url"] = f"{base}files/{server.roots.relative(path)}"
        data.append(item)
    return JSON({"created": int(job.finished or time.time()), "data": data})


def _read(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


# --- chat ---------------------------------------------------------------------------------------

def _parts(content) -> tuple[str, list[str]]:
    """A message's text and its image URLs."""
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        return "", []
    texts, urls = [], []
    for part in content:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text":
            texts.append(str(part.get("text") or ""))
        elif part.get("type") == "image_url":
            url = part.get("image_url")
            urls.append(url.get("url") if isinstance(url, dict) else url)
    return "\n".join(t for t in texts if t), [u for u in urls if u]


def _decode_data_url(url: str) -> bytes:
    if not isinstance(url, str) or not url.startswith("data:"):
        raise Refused("image_url: only data: URLs are taken (this server never fetches from the network)", 400)
    head, _, payload = url.partition(",")
    if not head.endswith(";base64"):
        raise Refused("image_url: expected a base64 data: URL", 400)
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise Refused("image_url: the data: URL is not valid base64", 400) from None


def _conversation(messages: list) -> tuple[str, list[str], list[tuple[str, str]]]:
    """The last user question, every image URL in the user's messages, and the earlier
    (question, answer) turns."""
    turns, question, urls, pending = [], None, [], None
    for message in messages:
        if not isinstance(message, dict):
            raise Refused("messages: each message must be an object", 400)
        text, found = _parts(message.get("content"))
        if message.get("role") == "user":
            urls.extend(found)
            if pending is not None:
                turns.append((pending, ""))
            pending = text
        elif message.get("role") == "assistant" and pending is not None:
            turns.append((pending, text))
            pending = None
    question = pending
    if not question:
        raise Refused("messages: the last message must be the user's, with a question", 400)
    return question, list(dict.fromkeys(urls)), turns


@router.post("/chat/completions")
@_guarded
async def completions(request: Request):
    from visionloop.values import check_args

    server = request.app.state.server
    body = await _body(request)
    tool = server.registry.tools.get("see")
    if tool is None:
        raise Refused("the see tool is not installed", 503)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise Refused("messages: required, a list", 400)
    question, urls, turns = _conversation(messages)
    if not urls:
        raise Refused("messages: no image; add an image_url part (a data: URL) to a user message", 400)
    if len(urls) > MAX_IMAGES:
        raise Refused(f"messages: at most {MAX_IMAGES} images", 400)
    limits = server.config.images
    images = [await run_in_threadpool(save_upload, io.BytesIO(_decode_data_url(u)), f"image {i + 1}", server.roots,
                                      limits.max_pixels, limits.max_file_mb) for i, u in enumerate(urls)]
    args = {"image": images, "question": question}
    tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    for key, value in (("max_new_tokens", tokens), ("temperature", body.get("temperature")),
                       ("top_p", body.get("top_p")), ("seed", body.get("seed"))):
        if value is not None:
            args[key] = value
    check_args(tool, args)

    def conversation(_images, fits):
        kept = list(turns)
        while kept and not fits(kept):
            kept.pop(0)
        return kept, len(turns) - len(kept)

    model = str(body.get("model") or MODEL)
    if not body.get("stream"):
        job = await server.jobs.wait(server.submit_tool(tool, args, conversation=conversation))
        if job.result is None or job.error:
            return _error(422 if job.status != "cancelled" else 409, job.error or job.status, "server_error")
        data = job.result["data"]
        usage = {"prompt_tokens": data.get("prompt_tokens", 0), "completion_tokens": data.get("new_tokens", 0)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        return JSON({"id": f"chatcmpl-{job.id}", "object": "chat.completion", "created": int(job.created),
                     "model": model, "choices": [{"index": 0, "finish_reason": "stop", "message": {
                         "role": "assistant", "content": job.result["text"]}}], "usage": usage})
    loop = asyncio.get_running_loop()
    pieces: asyncio.Queue = asyncio.Queue()
    job = server.submit_tool(tool, args, conversation=conversation,
                             on_text=lambda text: loop.call_soon_threadsafe(pieces.put_nowait, text))
    job.done.add_done_callback(lambda _: loop.call_soon_threadsafe(pieces.put_nowait, None))
    return StreamingResponse(_stream(job, model, pieces), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache"})


async def _stream(job, model: str, pieces: asyncio.Queue):
    def chunk(delta: dict, finish: str | None = None) -> str:
        return "data: " + json.dumps({"id": f"chatcmpl-{job.id}", "object": "chat.completion.chunk",
                                      "created": int(job.created), "model": model, "choices": [
                                          {"index": 0, "delta": delta, "finish_reason": finish}]}) + "\n\n"

    yield chunk({"role": "assistant", "content": ""})
    streamed = False
    while (text := await pieces.get()) is not None:
        streamed = True
        yield chunk({"content": text})
    if not streamed and isinstance(job.result, dict) and job.result.get("text"):  # a backend that does not stream
        yield chunk({"content": job.result["text"]})
    if job.status != "done":
        yield "data: " + json.dumps({"error": {"message": job.error or job.status, "type": "server_error"}}) + "\n\n"
    yield chunk({}, "stop")
    yield "data: [DONE]\n\n"
