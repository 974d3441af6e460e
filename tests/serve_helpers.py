"""What the server tests share: a fake tool that waits at checkpoints (for cancel and a full
queue), a loop blocker, and a real server on a free loopback port in a background thread."""

from __future__ import annotations

import contextlib
import threading
import time

from visionloop.errors import Cancelled
from visionloop.hookspecs import hookimpl
from visionloop.tools import Input, Tool, ToolResult


def wait_tool(ctx, seconds=5.0):
    """Waits `seconds`, checking the cancel flag every 10 ms as a model checks it at each step."""
    end = time.monotonic() + float(seconds)
    while time.monotonic() < end:
        if ctx.cancel.is_set():
            raise Cancelled("cancelled")
        time.sleep(0.01)
    return ToolResult(tool="wait", text=f"waited {seconds} s")


class ServeFakes:
    """A plugin: `load_registry(extra=[ServeFakes])`."""

    __name__ = "serve_fakes"

    @staticmethod
    @hookimpl
    def register_tools(register):
        register(Tool("wait", "wait a while, cancellable", [Input("seconds", "float", 5.0, min=0.0, max=60.0)],
                      wait_tool, returns_images=False))


@contextlib.contextmanager
def blocked(loop, timeout: float = 60.0):
    """The loop's worker busy with a job of its own until the block ends (so that server jobs queue)."""
    release = threading.Event()
    started = threading.Event()

    def hold(ctx):
        started.set()
        release.wait(timeout)

    future = loop.submit(hold)
    assert started.wait(30), "the loop never started the blocking job"
    try:
        yield
    finally:
        release.set()
        future.result(30)


def wait_until(predicate, timeout: float = 30.0, what: str = "condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@contextlib.contextmanager
def live_server(server):
    """`server` (from `build_server`) served by uvicorn on a free 127.0.0.1 port; yields its base URL."""
    from visionloop.server.app import create_app
    from visionloop.server.listen import address_of, bind, uvicorn_server

    sock = bind("127.0.0.1", 0)
    web = uvicorn_server(create_app(server))
    thread = threading.Thread(target=web.run, kwargs={"sockets": [sock]}, name="test-uvicorn", daemon=True)
    thread.start()
    try:
        wait_until(lambda: web.started, 30, "uvicorn to start")
        yield address_of(sock)
    finally:
        web.should_exit = True
        thread.join(15)
        sock.close()
