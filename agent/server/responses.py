"""JSON answers: `JSON` (anything a result may hold, as the CLI's `--json` writes it), and
errors, one line each: `{"error": MESSAGE}` (and `problems` for a workflow's list), with the
HTTP status that says whose move it is."""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import JSONResponse

from visionloop.errors import InputError, VisionloopError
from visionloop.server.arguments import BadRequest
from visionloop.server.files import Refused
from visionloop.server.jobs import QueueFull
from visionloop.server.security import BodyTooLarge


class JSON(JSONResponse):
    def render(self, content) -> bytes:
        return json.dumps(content, ensure_ascii=False, default=str, separators=(",", ":")).encode()


def error(status: int, message: str, **extra) -> JSONResponse:
    return JSON({"error": message, **extra}, status_code=status)


def install(app) -> None:
    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused):
        return error(exc.status, str(exc))

    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, exc: BadRequest):
        return error(exc.status, str(exc))

    @app.exception_handler(QueueFull)
    async def queue_full(request: Request, exc: QueueFull):
        return JSON({"error": str(exc)}, status_code=429, headers={"Retry-After": "5"})

    @app.exception_handler(BodyTooLarge)
    async def too_large(request: Request, exc: BodyTooLarge):
        return error(413, "request body over the limit")

    @app.exception_handler(InputError)
    async def input_error(request: Request, exc: InputError):
        return error(400, str(exc))

    @app.exception_handler(VisionloopError)
    async def visionloop_error(request: Request, exc: VisionloopError):
        problems = getattr(exc, "problems", None)
        extra = {"problems": [str(p) for p in problems]} if isinstance(problems, list) and problems else {}
        return error(400, str(exc).splitlines()[0] if str(exc) else type(exc).__name__, **extra)
