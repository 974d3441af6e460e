"""The server: one process that owns the models (the same `Loop` as every other face), and the
ASGI application over it.

    server = build_server(config, registry, out_dir)      # loop, jobs, events, run index
    app = create_app(server)                               # FastAPI + the Guard middleware

`Server` holds what the routes share; `api` (JSON), `openai_api` (`/v1`), `pages` (the
gallery) and `files` (`/files/...`) are the routes. Nothing here runs a tool itself: jobs go
through `Loop.submit` with the builders of `calls`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from visionloop.server.events import Bus
from visionloop.server.files import Roots
from visionloop.server.jobs import Job, Jobs
from visionloop.server.progress import expected_checkpoints
from visionloop.server.runs import RunIndex

log = logging.getLogger(__name__)

DEFAULT_PORT = 8188
DEFAULT_QUEUE = 16


@dataclass
class Server:
    config: object
    registry: object
    loop: object
    roots: Roots
    bus: Bus
    jobs: Jobs
    runs: RunIndex
    token: str | None = None
    owns_loop: bool = False
    watcher: object = None
    cors_origins: list[str] = field(default_factory=list)

    def submit_tool(self, tool, args: dict, **kwargs) -> Job:
        from visionloop.server.calls import tool_call

        return self.jobs.submit("tool", tool.name, self.shown(args), tool_call(tool, args, self.roots),
                                total=expected_checkpoints(tool, args, self.config), **kwargs)

    def shown(self, args: dict) -> dict:
        """Arguments as a client sees them: files inside the output folder by their relative name."""
        def one(value):
            if isinstance(value, list):
                return [one(v) for v in value]
            if isinstance(value, str) and os.path.isabs(value):
                return self.roots.relative(value) or value
            return value

        return {k: one(v) for k, v in args.items()}

    def close(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None
        if self.owns_loop:
            self.loop.close()


def build_server(config, registry, out_dir: str | Path | None = None, loop=None, input_roots=(),
                 max_queue: int = DEFAULT_QUEUE, token: str | None = None, cors_origins=()) -> Server:
    """The server's parts over `loop` (made here, with its own models, when not given)."""
    from visionloop.paths import user_path

    bus = Bus()
    out = user_path(out_dir or config.output, "--out")
    out.mkdir(parents=True, exist_ok=True)
    owns = loop is None
    if owns:
        from visionloop.context import Context
        from visionloop.loop import Loop

        def report(line: str) -> None:  # model loads and the like: to the log and to the page
            log.info("%s", line)
            bus.publish("status", line=line)

        ctx = Context.create(config, out, report=report)
        ctx.models.report = report
        loop = Loop(registry, ctx)
    roots = Roots(out, [user_path(p, "--input-root") for p in input_roots])
    jobs, runs = Jobs(loop, bus, roots.out, max_queue), RunIndex(roots)
    jobs.on_end.append(lambda job: runs.invalidate())
    return Server(config=config, registry=registry, loop=loop, roots=roots, bus=bus, jobs=jobs, runs=runs,
                  token=token, owns_loop=owns, cors_origins=list(cors_origins))


def create_app(server: Server):
    """The ASGI application: FastAPI routes inside the `Guard` (token, Host, Origin, body size)."""
    from fastapi import FastAPI

    from visionloop import __version__
    from visionloop.server import api, openai_api, pages, responses
    from visionloop.server.security import Guard

    app = FastAPI(title="visionloop", version=__version__, docs_url="/docs", redoc_url=None,
                  description="A local agent for images: the tool registry, workflows and runs over HTTP.")
    app.state.server = server
    responses.install(app)
    app.include_router(api.router)
    app.include_router(openai_api.router)
    pages.install(app)
    if server.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=server.cors_origins, allow_methods=["*"],
                           allow_headers=["*"])
    limits = server.config.images
    max_body = int(limits.max_file_mb * 1024 * 1024) * 4 + (1 << 20)  # a few images and the fields
    guard = Guard(app, server.token, max_body, server.cors_origins)
    guard.server = server
    return guard
