"""A real HTTP server on 127.0.0.1 that speaks the documented wire formats of Ollama
(/api/chat NDJSON, /api/tags, /api/show, /api/pull) and of an OpenAI-compatible server
(/v1/models, /v1/chat/completions SSE), with knobs for every failure the backends must word:
errors before the answer, a slow stream, a connection closed mid-answer, a stream with no final
message, malformed JSON, a required API key. It records every request (path, headers, JSON
body) so tests can check what was actually sent. Shared by the tests and the benchmark."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DIGEST = "d1f3a5c7" * 8


class _Quiet(ThreadingHTTPServer):
    def handle_error(self, request, client_address):  # a client that hung up is no news
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, OSError)):
            super().handle_error(request, client_address)


class FakeServer:
    def __init__(self):
        # name -> what /api/tags and /api/show say about it
        self.models = {"llava:7b": {"digest": DIGEST, "vision": True, "context": 32768, "size": 4_733_363_377},
                       "llama3:latest": {"digest": "ab" * 32, "vision": False, "context": 8192, "size": 4_661_224_676}}
        self.pullable = {"llava:13b"}  # what /api/pull can fetch
        self.openai_models = ["llava-v1.6-34b", "other-model"]
        self.answer = "A lighthouse on a rocky cliff at dusk."
        self.requests: list[dict] = []
        self.fail: list[int] = []  # statuses to answer the next chat requests with, one each
        self.fail_message: str | None = None  # their error message (default: "failure STATUS")
        self.first_delay = 0.0  # seconds before the first piece
        self.piece_delay = 0.0  # seconds between pieces
        self.cut_after: int | None = None  # close the connection after this many pieces
        self.no_done = False  # end the stream cleanly, but without done / [DONE]
        self.malformed = False  # send a line that is not JSON
        self.error_line: str | None = None  # send {"error": ...} after the first piece
        self.api_key: str | None = None  # require "Authorization: Bearer <key>"
        self.disconnected = threading.Event()  # the client went away mid-stream
        self.pieces_sent = 0
        self.picks: dict = {}  # structured (JSON-schema) answers: field -> value (default: the first allowed)
        self._httpd = _Quiet(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._httpd.shutdown()
        self._httpd.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def pieces(self) -> list[str]:
        words = self.answer.split(" ")
        return [words[0]] + [" " + w for w in words[1:]]

    def structured(self, schema: dict) -> str:
        """A JSON-schema request's answer: each field's value from `picks`, else its first allowed value."""
        return json.dumps({k: self.picks.get(k, v.get("enum", [""])[0]) for k, v in schema["properties"].items()})

    def chats(self) -> list[dict]:
        return [r for r in self.requests if r["path"] in ("/api/chat", "/v1/chat/completions")]


def _handler(server: FakeServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def setup(self):
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as Go servers do

        # -- plumbing ------------------------------------------------------------------------
        def _body(self):
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            return json.loads(raw) if raw else None

        def _json(self, status: int, data, extra: dict | None = None):
            raw = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(raw)

        def _start_stream(self, kind: str):
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()

        def _chunk(self, raw: bytes):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(raw), raw))
            self.wfile.flush()

        def _line(self, raw: bytes):
            """One line, split across two HTTP chunks (a reader must join them)."""
            half = max(1, len(raw) // 2)
            self._chunk(raw[:half])
            self._chunk(raw[half:])

        def _end(self):
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

        def _cut(self):
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True

        def _authorised(self) -> bool:
            if server.api_key is None or self.headers.get("Authorization") == f"Bearer {server.api_key}":
                return True
            if self.path.startswith("/v1/"):
                self._json(401, {"error": {"message": "Invalid API key", "type": "invalid_request_error"}})
            else:
                self._json(401, {"error": "unauthorized"})
            return False

        def _handle(self, method: str):
            body = self._body() if method == "POST" else None
            server.requests.append({"method": method, "path": self.path, "headers": dict(self.headers), "body": body})
            if not self._authorised():
                return
            route = {("GET", "/api/tags"): self.tags, ("POST", "/api/show"): self.show,
                     ("POST", "/api/chat"): self.ollama_chat, ("POST", "/api/pull"): self.pull,
                     ("GET", "/v1/models"): self.openai_models, ("POST", "/v1/chat/completions"): self.openai_chat}
            handler = route.get((method, self.path))
            if handler is None:
                self._json(404, {"error": "404 page not found"})
                return
            try:
                handler(body)
            except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
                server.disconnected.set()

        def do_GET(self):
            self._handle("GET")

        def do_POST(self):
            self._handle("POST")

        # -- Ollama --------------------------------------------------------------------------
        def tags(self, body):
            self._json(200, {"models": [
                {"name": name, "model": name, "modified_at": "2025-01-01T00:00:00Z", "size": m["size"],
                 "digest": m["digest"], "details": {"format": "gguf", "family": "llama",
                                                    "families": ["llama", "clip"] if m["vision"] else ["llama"],
                                                    "parameter_size": "7B", "quantization_level": "Q4_0"}}
                for name, m in server.models.items()]})

        def _model(self, name):
            full = name if ":" in name else f"{name}:latest"
            return server.models.get(full)

        def show(self, body):
            m = self._model(body.get("model", ""))
            if m is None:
                self._json(404, {"error": f"model '{body.get('model')}' not found"})
                return
            self._json(200, {"details": {"family": "llama"}, "parameters": "stop \"USER:\"",
                             "model_info": {"general.architecture": "llama", "llama.context_length": m["context"]},
                             "capabilities": ["completion", "vision"] if m["vision"] else ["completion"]})

        def _failing(self) -> bool:
            if not server.fail:
                return False
            status = server.fail.pop(0)
            message = server.fail_message or f"failure {status}"
            if self.path.startswith("/v1/"):
                self._json(status, {"error": {"message": message, "type": "server_error"}}, {"Retry-After": "0"})
            else:
                self._json(status, {"error": message}, {"Retry-After": "0"})
            return True

        def _stream(self, kind: str, lines: list[bytes], final: list[bytes], sse: bool = False):
            time.sleep(server.first_delay)
            self._start_stream(kind)
            for i, line in enumerate(lines):
                if server.cut_after is not None and i == server.cut_after:
                    self._cut()
                    return
                if server.malformed and i == 1:
                    self._line(b"data: {this is not json\n\n" if sse else b"{this is not json\n")
                if server.error_line and i == 1:
                    error = {"error": {"message": server.error_line}} if sse else {"error": server.error_line}
                    self._line((b"data: " if sse else b"") + json.dumps(error).encode() + b"\n")
                self._line(line)
                server.pieces_sent += 1
                time.sleep(server.piece_delay)
            if not server.no_done:
                for line in final:
                    self._line(line)
            self._end()

        def ollama_chat(self, body):
            if self._failing():
                return
            if self._model(body["model"]) is None:
                self._json(404, {"error": f"model \"{body['model']}\" not found, try pulling it first"})
                return
            if isinstance(body.get("format"), dict) and body.get("stream") is False:
                self._json(200, {"model": body["model"], "done": True,
                                 "message": {"role": "assistant", "content": server.structured(body["format"])}})
                return
            lines = [json.dumps({"model": body["model"], "created_at": "2025-01-01T00:00:00Z",
                                 "message": {"role": "assistant", "content": piece}, "done": False}).encode() + b"\n"
                     for piece in server.pieces()]
            final = json.dumps({"model": body["model"], "created_at": "2025-01-01T00:00:00Z",
                                "message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "stop",
                                "total_duration": 1000, "prompt_eval_count": 600,
                                "eval_count": len(server.pieces())}).encode() + b"\n"
            self._stream("application/x-ndjson", lines, [final])

        def pull(self, body):
            name = body["model"]
            self._start_stream("application/x-ndjson")
            if name not in server.pullable and name not in server.models:
                self._line(b'{"status":"pulling manifest"}\n')
                self._line(json.dumps({"error": "pull model manifest: file does not exist"}).encode() + b"\n")
                self._end()
                return
            lines = [{"status": "pulling manifest"}] + [
                {"status": "pulling 1a2b3c", "digest": "sha256:1a2b3c", "total": 1000, "completed": done}
                for done in (0, 500, 1000)] + [{"status": "verifying sha256 digest"}, {"status": "writing manifest"},
                                                {"status": "success"}]
            for line in lines:
                self._line(json.dumps(line).encode() + b"\n")
            self._end()
            server.models.setdefault(name, {"digest": "cd" * 32, "vision": True, "context": 4096, "size": 8_000_000_000})

        # -- OpenAI-compatible ---------------------------------------------------------------
        def openai_models(self, body):
            self._json(200, {"object": "list", "data": [
                {"id": name, "object": "model", "created": 0, "owned_by": "vllm", "max_model_len": 4096}
                for name in server.openai_models]})

        def openai_chat(self, body):
            if self._failing():
                return
            if body["model"] not in server.openai_models:
                self._json(404, {"error": {"message": f"The model `{body['model']}` does not exist.",
                                           "type": "NotFoundError", "code": 404}})
                return
            if (body.get("response_format") or {}).get("type") == "json_schema" and body.get("stream") is False:
                content = server.structured(body["response_format"]["json_schema"]["schema"])
                self._json(200, {"id": "chatcmpl-1", "object": "chat.completion", "model": body["model"], "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]})
                return

            def event(delta, finish=None, **extra):
                chunk = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": body["model"],
                         "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
                return b"data: " + json.dumps(chunk).encode() + b"\r\n\r\n"  # CRLF, as some servers send

            lines = [b": keep-alive\n\n" + event({"role": "assistant", "content": server.pieces()[0]})]
            lines += [event({"content": piece}) for piece in server.pieces()[1:]]
            final = [event({}, "stop")]
            if (body.get("stream_options") or {}).get("include_usage"):
                usage = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": body["model"],
                         "choices": [], "usage": {"prompt_tokens": 600, "completion_tokens": len(server.pieces()),
                                                  "total_tokens": 600 + len(server.pieces())}}
                final.append(b"data: " + json.dumps(usage).encode() + b"\n\n")
            final.append(b"data: [DONE]\n\n")
            self._stream("text/event-stream", lines, final, sse=True)

    return Handler
