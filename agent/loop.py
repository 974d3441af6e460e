"""The job loop: one worker thread that owns the models and runs one job at a time.

Sources (the CLI, the chat, the watcher, a workflow run) only submit jobs; a GPU is one
resource, so jobs never run side by side. A job is a callable taking the `Context`; a tool
call is the common case (`submit_call`). `cancel()` asks the job in hand to stop at its next
checkpoint (a decoded token, a denoising step). Each job runs with the configured intra-op
thread count set on the worker thread (`visionloop.models.threads`), whatever the thread that started
the loop has set, so repeated runs agree. `close()` cancels the job in hand, fails the
queued ones with `ShuttingDown` (they never run) and joins the worker.
"""

from __future__ import annotations

import concurrent.futures
import logging
import queue
import sys
import threading
from concurrent.futures import Future
from typing import Any, Callable

from visionloop.context import Context
from visionloop.errors import Cancelled, ShuttingDown
from visionloop.plugins import Registry
from visionloop.tools import ToolCall, ToolResult, run_tool

log = logging.getLogger(__name__)

_STOP = object()
CLOSE_WAIT = 30.0  # seconds close() waits for the job in hand to stop


class Loop:
    def __init__(self, registry: Registry, ctx: Context):
        self.registry = registry
        self.ctx = ctx
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._current: Future | None = None  # the future of the job in hand
        self.busy = threading.Event()

    def _ensure_worker(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._work, name="visionloop-worker", daemon=True)
            self._thread.start()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            job, future = item
            if self._closed:  # queued before close() and not yet drained: never started
                _refuse(future)
                continue
            if not future.set_running_or_notify_cancel():
                continue
            self.busy.set()
            self._current = future
            self.ctx.cancel.clear()
            if self._closed:  # close() came in between: this job is "the job in hand", cancelled
                self.ctx.cancel.set()
            try:
                _pin_threads(self.ctx)
                future.set_result(job(self.ctx))
            except BaseException as exc:  # handed to whoever waits on the future
                future.set_exception(exc)
            finally:
                self._current = None
                self.busy.clear()

    def submit(self, job: Callable[[Context], Any]) -> Future:
        """Queue `job(ctx)`; the future holds its return value or its exception. After
        `close()` the future fails at once with `ShuttingDown`."""
        future: Future = Future()
        with self._lock:
            if self._closed:
                _refuse(future)
                return future
            self._ensure_worker()
            self._queue.put((job, future))
        return future

    def submit_call(self, call: ToolCall) -> Future:
        """Queue one tool call; the future holds its list of `ToolResult`s."""
        tool = self.registry.tool(call.tool)
        return self.submit(lambda ctx: run_tool(tool, call.args, ctx))

    def call(self, call: ToolCall) -> list[ToolResult]:
        """Run one tool call and wait for it (Ctrl-C cancels it and re-raises)."""
        return wait(self, self.submit_call(call))

    def cancel(self, future: Future | None = None) -> None:
        """Cancel the job of `future`: one still queued never runs; the one in hand stops at its
        next checkpoint. Without `future`, the job in hand, whoever submitted it. Another
        source's job (the watcher's, beside the chat) is never stopped by a cancel aimed at yours."""
        if future is None or future is self._current:
            self.ctx.cancel.set()
        else:
            future.cancel()  # queued: the worker skips it; already finished: nothing to do

    def close(self) -> None:
        """Stop: cancel the job in hand (it stops at its next checkpoint), fail every queued job
        with `ShuttingDown` (none of them runs), and wait for the worker to end. Idempotent."""
        with self._lock:
            self._closed = True
            thread = self._thread
            while True:  # fail the queued jobs now: their sources hear at once, not after the job in hand
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not _STOP:
                    _refuse(item[1])
            if thread is None or not thread.is_alive():
                return
            self.cancel()  # the job in hand, if any; no later job starts
            self._queue.put(_STOP)
        if thread is not threading.current_thread():  # a job that closes its own loop just ends it
            thread.join(CLOSE_WAIT)
            if thread.is_alive():  # loading a model has no checkpoint; the worker is a daemon thread
                log.warning("the job in hand has not stopped %g s after the cancel; leaving it", CLOSE_WAIT)


def _pin_threads(ctx: Context) -> None:
    """The configured intra-op thread count on this (the worker) thread, before each job: torch's
    count is per-thread state that the main thread's setting does not reach. Only once torch is
    loaded (a job that loads it first pins in the model toolkit, before any work)."""
    if "torch" in sys.modules:
        from visionloop.models.threads import pin

        pin(getattr(ctx, "config", None))  # no config (a bare context): the process default


def _refuse(future: Future) -> None:
    """Fail a job that never started with `ShuttingDown` (unless its source cancelled it)."""
    try:
        if future.set_running_or_notify_cancel():
            future.set_exception(ShuttingDown())
    except (RuntimeError, concurrent.futures.InvalidStateError):  # already settled elsewhere
        pass


def wait(loop: Loop, future: Future):
    """Wait for `future`; on Ctrl-C cancel its job (not another source's), wait for it to stop, re-raise.

    What the job did on its way out is never dropped silently: an error other than the
    `Cancelled` asked for, or a job that does not stop within 30 s, is logged."""
    try:
        while True:
            try:
                return future.result(timeout=0.1)
            except concurrent.futures.TimeoutError:  # not the built-in TimeoutError before 3.11
                continue
    except KeyboardInterrupt:
        loop.cancel(future)
        if future.cancelled():  # still queued: it never runs, nothing to wait for
            raise
        try:
            future.result(timeout=30)
        except concurrent.futures.TimeoutError:
            log.warning("the cancelled job has not stopped after 30 s; leaving it")
        except (Cancelled, concurrent.futures.CancelledError):
            pass
        except Exception as exc:  # noqa: BLE001 - reported, then the Ctrl-C goes on
            log.warning("the cancelled job ended with an error: %s: %s", type(exc).__name__, exc,
                        exc_info=log.isEnabledFor(logging.DEBUG))
        raise
