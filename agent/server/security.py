"""Who may talk to the server, and how much they may send.

- Loopback by default. Binding any other address needs a token (`--token-env VAR`), and the
  server refuses to start without one (`check_bind`).
- With a token, every request carries it: `Authorization: Bearer TOKEN`, or the cookie a browser
  gets by opening any page once with `?token=TOKEN` (then redirected to the same page without it).
- Without a token (loopback only), the `Host` header must name a loopback host (a web page that
  rebinds its DNS name to 127.0.0.1 is refused), and a request that changes anything (POST,
  DELETE, ...) from a browser must come from the server's own pages (its `Origin`), unless that
  origin is listed with `--cors-origin`.
- A request body is limited to `max_body` bytes (413), counted as it arrives.

`Guard` is plain ASGI middleware: it costs a few dictionary look-ups per request.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
from urllib.parse import parse_qsl, urlencode, urlsplit

from visionloop.errors import UsageError

COOKIE = "visionloop_token"
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def is_loopback(host: str) -> bool:
    """Whether `host` (an address or a name to bind or a Host header's name) is loopback only."""
    name = host.strip().lower().strip("[]")
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def read_token(env_name: str | None) -> str | None:
    """The token held by the environment variable `env_name` (never the token on the command
    line: it would show in `ps`). None when no variable is named."""
    if not env_name:
        return None
    value = os.environ.get(env_name)
    if value is None or not value.strip():
        raise UsageError(f"--token-env {env_name}: the variable is not set (or blank); export it with the token")
    if len(value.strip()) < 16:
        raise UsageError(f"--token-env {env_name}: the token is shorter than 16 characters; use a longer one "
                         "(e.g. from `python -c 'import secrets; print(secrets.token_urlsafe())'`)")
    return value.strip()


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve a non-loopback address without a token."""
    if not is_loopback(host) and not token:
        raise UsageError(f"--host {host}: not a loopback address; serving it needs a token "
                         "(--token-env VAR, with VAR set to the token), or use --host 127.0.0.1")


class BodyTooLarge(Exception):
    pass


async def _send_json(send, status: int, message: str, headers: list | None = None) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """ASGI middleware: token, Host and Origin checks, and the request body limit."""

    def __init__(self, app, token: str | None, max_body: int, cors_origins: list[str] = ()):
        self.app = app
        self.token = token
        self.max_body = max_body
        self.cors_origins = {o.rstrip("/") for o in cors_origins}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        method = scope["method"]
        if self.token:
            verdict = self._token_verdict(scope, headers)
            if verdict == "redirect":
                return await self._set_cookie(scope, send)
            if verdict is not None:
                return await _send_json(send, 401, verdict, [(b"www-authenticate", b"Bearer")])
        else:
            host = headers.get("host", "")
            if not is_loopback(urlsplit(f"//{host}").hostname or ""):
                return await _send_json(send, 403, f"Host {host!r} is not a loopback name; this server answers "
                                                   "127.0.0.1, localhost and [::1] only")
        origin = headers.get("origin")
        if method not in SAFE_METHODS and origin and origin != "null" and origin.rstrip("/") not in self.cors_origins:
            parts = urlsplit(origin)
            if parts.netloc != headers.get("host"):
                return await _send_json(send, 403, f"requests from {origin} are refused (not this server's pages; "
                                                   "allow an origin with --cors-origin)")
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            return await _send_json(send, 413, f"request body over the limit of {self.max_body} bytes")
        return await self._limited(scope, receive, send)

    def _token_verdict(self, scope, headers) -> str | None:
        """None when the request carries the token; "redirect" for a page opened with `?token=`;
        else why it is refused."""
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer ") and hmac.compare_digest(auth[7:].strip().encode(), self.token.encode()):
            return None
        for part in headers.get("cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE and hmac.compare_digest(value.encode(), self.token.encode()):
                return None
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        given = query.get("token")
        if given is not None and scope["method"] == "GET" and hmac.compare_digest(given.encode(), self.token.encode()):
            return "redirect"
        return "missing or wrong token (send Authorization: Bearer TOKEN)"

    async def _set_cookie(self, scope, send) -> None:
        query = [(k, v) for k, v in parse_qsl(scope.get("query_string", b"").decode("latin-1")) if k != "token"]
        location = scope.get("root_path", "") + scope["path"] + (f"?{urlencode(query)}" if query else "")
        cookie = f"{COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict"
        await send({"type": "http.response.start", "status": 303,
                    "headers": [(b"location", location.encode()), (b"set-cookie", cookie.encode()),
                                (b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})

    async def _limited(self, scope, receive, send):
        seen = 0
        started = False

        async def counted_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise BodyTooLarge()
            return message

        async def tracked_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge:
            if not started:
                await _send_json(send, 413, f"request body over the limit of {self.max_body} bytes")
