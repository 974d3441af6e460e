"""The job loop: one worker thread that owns the models and runs one job at a time.

Sources (the CLI, the chat, the watcher, a workflow run) only submit jobs; a GPU is one
resource, so jobs never run side by side. A job is a callable taking the `Context`; a tool
call is the common case (`submit_call`). `cancel()` asks the job in hand to stop at its next
checkpoint (a decoded token, a denoising step).
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future
from typing import Any, Callable

from agent.context import Context
from agent.plugins import Registry
from agent.tools import ToolCall, ToolResult, run_tool

log = logging.getLogger(__name__)

_STOP = object()


class Loop:
    def __init__(self, registry: Registry, ctx: Context):
        self.registry = registry
        self.ctx = ctx
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.busy = threading.Event()

    def _ensure_worker(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name="visionloop-worker", daemon=True)
                self._thread.start()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            job, future = item
            if not future.set_running_or_notify_cancel():
                continue
            self.ctx.cancel.clear()
            self.busy.set()
            try:
                future.set_result(job(self.ctx))
            except BaseException as exc:  # handed to whoever waits on the future
                future.set_exception(exc)
            finally:
                self.busy.clear()

    def submit(self, job: Callable[[Context], Any]) -> Future:
        """Queue `job(ctx)`; the future holds its return value or its exception."""
        self._ensure_worker()
        future: Future = Future()
        self._queue.put((job, future))
        return future

    def submit_call(self, call: ToolCall) -> Future:
        """Queue one tool call; the future holds its list of `ToolResult`s."""
        tool = self.registry.tool(call.tool)
        return self.submit(lambda ctx: run_tool(tool, call.args, ctx))

    def call(self, call: ToolCall) -> list[ToolResult]:
        """Run one tool call and wait for it (Ctrl-C cancels it and re-raises)."""
        return wait(self, self.submit_call(call))

    def cancel(self) -> None:
        self.ctx.cancel.set()

    def close(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout=5)


def wait(loop: Loop, future: Future):
    """Wait for `future`; on Ctrl-C cancel the job in hand, wait for it to stop, re-raise."""
    try:
        while True:
            try:
                return future.result(timeout=0.1)
            except TimeoutError:
                continue
    except KeyboardInterrupt:
        loop.cancel()
        try:
            future.result(timeout=30)
        except BaseException:
            pass
        raise
