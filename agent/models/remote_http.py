"""HTTP for the server backends (Ollama, OpenAI-compatible): requests with bounded retries,
streamed answers read line by line, and the one-line errors that name the fix.

A streamed request runs in the job's thread; a small watchdog thread beside it ends the read
at once (it shuts the socket down) when the job is cancelled, when no first token arrives
within `first_token_timeout`, or when the stream goes silent for `read_timeout` seconds.
HTTP 429 and 5xx are retried `retries` times with doubling pauses (or the server's
Retry-After); connection failures are not (the watcher retries whole jobs). The API key is read
from the environment at each request and never stored, logged or put in a message.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from typing import Iterator
from urllib.parse import urlsplit

from visionloop.errors import Cancelled, ModelError

log = logging.getLogger(__name__)

MAX_PAUSE = 30.0  # longest pause between two attempts, whatever Retry-After says


def httpx():
    """httpx, or its drop-in successor httpx2 (what huggingface_hub installs)."""
    try:
        import httpx as module
    except ImportError:
        import httpx2 as module
    return module


class RemoteError(ModelError):
    """A server backend failed; `transient` when trying again later may work (server down, 5xx)."""

    def __init__(self, message: str, transient: bool = False, status: int | None = None):
        super().__init__(message)
        self.transient = transient
        self.status = status


class HttpStatus(Exception):
    """A 4xx answer the backend words itself (404: model not there; 400: no images, ...)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def one_line(text: str, limit: int = 200) -> str:
    """Server-sent text as one short, printable line."""
    text = " ".join("".join(c if c.isprintable() else " " for c in str(text)).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def server_message(raw: bytes | str) -> str:
    """The error text of a server's answer: Ollama's {"error": "..."}, OpenAI's
    {"error": {"message": ...}}, else the body itself."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    try:
        data = json.loads(text)
    except ValueError:
        return one_line(text)
    error = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(error, dict):
        error = error.get("message") or error.get("detail") or error
    return one_line(error if isinstance(error, str) else json.dumps(error))


def shown(url: str) -> str:
    """A URL without any user:password part: what messages, `data` and manifests show."""
    parts = urlsplit(url)
    if "@" in parts.netloc:
        parts = parts._replace(netloc=parts.netloc.rsplit("@", 1)[1])
    return parts.geturl().rstrip("/")


class _Watchdog:
    """Ends a blocked read: cancel, no first token in time, or silence mid-stream."""

    def __init__(self, cancel: threading.Event | None, first: float, between: float):
        self.cancel = cancel if cancel is not None else threading.Event()
        self.between = between
        self.deadline = time.monotonic() + first
        self.reason: str | None = None  # "cancel", "first" or "between" once it fired
        self.started = False  # a line has arrived
        self._stream = None
        self._done = False

    def trace(self, name: str, info: dict) -> None:  # httpcore's trace hook: the connection's stream
        if name == "connection.connect_tcp.complete":
            self._stream = info.get("return_value")

    def alive(self) -> None:
        self.started = True
        self.deadline = time.monotonic() + self.between

    def run(self) -> None:
        while not self._done:
            left = self.deadline - time.monotonic()
            if self.cancel.wait(max(0.0, min(left, 0.05))) or left <= 0:
                if self._done:
                    return
                self.reason = "cancel" if self.cancel.is_set() else "between" if self.started else "first"
                sock = self._stream.get_extra_info("socket") if self._stream is not None else None
                if sock is not None:
                    try:
                        sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked read in the job's thread
                    except OSError:
                        pass
                return

    def start(self) -> None:
        threading.Thread(target=self.run, name="visionloop-http-watchdog", daemon=True).start()

    def stop(self) -> None:
        self._done = True


class Server:
    """One server: where it is, how to word its failures, and the request settings."""

    def __init__(self, base_url: str, name: str, hint: str, spec, where, loopback: bool, url_key: str):
        self.base_url = base_url.rstrip("/")
        self.url_key = url_key  # the config key that names the server: host or base_url
        self.name = name  # "Ollama", "the OpenAI-compatible server"
        self.hint = hint  # what to check when it cannot be reached
        self.spec = spec
        self.where = where  # key -> "profiles.NAME.vision.KEY in FILE"
        self.loopback = loopback
        self._client = None

    @property
    def at(self) -> str:
        return f"{self.name} at {shown(self.base_url)}"

    def headers(self) -> dict:
        var = self.spec.api_key_env
        key = os.environ.get(var) if var else None
        return {"Authorization": f"Bearer {key}"} if key else {}

    def client(self):
        """One client per server, made on first use (making one costs tens of ms). Connections
        are not kept alive: each request gets its own, which the watchdog can shut down."""
        if self._client is None:
            hx = httpx()
            # a proxy from the environment must never see a loopback request (nor its API key)
            self._client = hx.Client(trust_env=not self.loopback, follow_redirects=False,
                                     limits=hx.Limits(max_keepalive_connections=0))
        return self._client

    def timeout(self, read: float | None):
        return httpx().Timeout(self.spec.connect_timeout, read=read, write=self.spec.read_timeout,
                               pool=self.spec.connect_timeout)

    # -- errors ------------------------------------------------------------------------------
    def refused(self, status: int, message: str) -> RemoteError:
        var = self.spec.api_key_env
        if status in (401, 403):
            if var and not os.environ.get(var):
                fix = f"${var} (named by {self.where('api_key_env')}) is not set: export it with the server's API key"
            elif var:
                fix = f"check the API key in ${var} (named by {self.where('api_key_env')})"
            else:
                fix = (f"it wants an API key: put it in an environment variable and name that variable "
                       f"as {self.where('api_key_env')}")
            return RemoteError(f"{self.at} refused the request (HTTP {status}: {message}): {fix}", status=status)
        if status == 429:
            return RemoteError(f"{self.at} is rate limiting (HTTP 429), still after {self.spec.retries + 1} attempts: "
                               "try again later", transient=True, status=status)
        return RemoteError(f"{self.at}: server error (HTTP {status}) after {self.spec.retries + 1} attempts: "
                           f"{message or 'no details'}; check the server's log", transient=True, status=status)

    def unreachable(self, exc) -> RemoteError:
        hx = httpx()
        if isinstance(exc, hx.ConnectTimeout):
            return RemoteError(f"cannot reach {self.at} within {self.spec.connect_timeout:g} s "
                               f"({self.where('connect_timeout')}): {self.hint}", transient=True)
        return RemoteError(f"cannot reach {self.at}: {self.hint}", transient=True)

    def _pause(self, attempt: int, response, cancel) -> None:
        delay = self.spec.retry_backoff * 2 ** attempt
        try:
            delay = float(response.headers.get("retry-after", delay))
        except ValueError:
            pass
        delay = min(max(delay, 0.0), MAX_PAUSE)
        log.info("%s answered HTTP %d; trying again in %.1f s", self.at, response.status_code, delay)
        if cancel is not None and cancel.wait(delay):
            raise Cancelled("cancelled")
        if cancel is None:
            time.sleep(delay)

    def _check(self, response, attempt: int, cancel) -> bool:
        """True: use this answer; False: try again (429/5xx with attempts left). Raises otherwise."""
        status = response.status_code
        if 300 <= status < 400:  # redirects are not followed: the key would travel to another address
            raise RemoteError(f"{self.at} redirected the request to {one_line(response.headers.get('location'), 80)}: "
                              f"put the final address in {self.where(self.url_key)}")
        if status < 400:
            return True
        retryable = status == 429 or status >= 500
        if retryable and attempt < self.spec.retries:
            response.read()
            self._pause(attempt, response, cancel)
            return False
        message = server_message(response.read())
        if retryable or status in (401, 403):
            raise self.refused(status, message)
        raise HttpStatus(status, message)

    # -- requests ----------------------------------------------------------------------------
    def request(self, method: str, path: str, body: dict | None = None) -> dict:
        """One JSON request and its JSON answer (429/5xx retried)."""
        hx = httpx()
        url = self.base_url + path
        for attempt in range(self.spec.retries + 1):
            try:
                response = self.client().request(method, url, json=body, headers=self.headers(),
                                                 timeout=self.timeout(self.spec.read_timeout))
            except hx.TimeoutException as exc:
                if isinstance(exc, hx.ConnectTimeout):
                    raise self.unreachable(exc) from None
                raise RemoteError(f"{self.at} did not answer {path} within {self.spec.read_timeout:g} s "
                                  f"({self.where('read_timeout')})", transient=True) from None
            except hx.TransportError as exc:
                raise self.unreachable(exc) from None
            except hx.HTTPError as exc:  # e.g. a body that cannot be decoded
                raise RemoteError(f"{self.at} sent an unreadable answer to {path}: {one_line(exc, 80)}") from None
            if self._check(response, attempt, None):
                return self.decode(response.content, path)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def decode(self, raw: bytes | str, what: str):
        try:
            return json.loads(raw)
        except ValueError:
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
            raise RemoteError(f"{self.at} sent malformed JSON for {what} ({one_line(text, 60)!r}): is that really "
                              f"{self.name}? (check {self.where(self.url_key)})") from None

    def stream(self, path: str, body: dict, cancel: threading.Event | None) -> Iterator[str]:
        """The answer's lines as they arrive (NDJSON lines, SSE lines), blank lines skipped.
        Raises `Cancelled` when `cancel` is set, `RemoteError` for every failure."""
        hx = httpx()
        url = self.base_url + path
        for attempt in range(self.spec.retries + 1):
            watch = _Watchdog(cancel, self.spec.first_token_timeout, self.spec.read_timeout)
            watch.start()
            try:
                with self.client().stream("POST", url, json=body, headers=self.headers(), timeout=self.timeout(None),
                                          extensions={"trace": watch.trace}) as response:
                    if not self._check(response, attempt, cancel):
                        continue
                    for line in response.iter_lines():
                        watch.alive()
                        if watch.cancel.is_set():
                            raise Cancelled("cancelled")
                        if line.strip():
                            yield line
                    return
            except hx.HTTPError as exc:  # transport failures (the watchdog's included), undecodable bodies
                raise self._stream_error(exc, watch) from None
            finally:
                watch.stop()
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _stream_error(self, exc, watch: _Watchdog) -> Exception:
        hx = httpx()
        if watch.reason == "cancel" or watch.cancel.is_set():
            return Cancelled("cancelled")
        if watch.reason == "first":
            return RemoteError(f"{self.at} sent no answer within {self.spec.first_token_timeout:g} s "
                               f"({self.where('first_token_timeout')}): the model may still be loading; "
                               "raise the timeout or try again", transient=True)
        if watch.reason == "between":
            return RemoteError(f"{self.at} went silent for {self.spec.read_timeout:g} s mid-answer "
                               f"({self.where('read_timeout')}): try again", transient=True)
        if isinstance(exc, (hx.ConnectError, hx.ConnectTimeout)):
            return self.unreachable(exc)
        what = "mid-answer" if watch.started else "before answering"
        return RemoteError(f"{self.at} stopped {what}: the connection closed ({one_line(exc, 80)}); try again",
                           transient=True)
