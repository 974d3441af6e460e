"""The job loop: one worker, waiting on a job, Ctrl-C, and closing (cancel the job in hand,
fail the queued ones with a clear "shutting down" error, join the worker)."""

from __future__ import annotations

import concurrent.futures
import concurrent.futures._base as futures_base
import logging
import threading
import time
from concurrent.futures import Future
from types import SimpleNamespace

import pytest

from visionloop.errors import Cancelled, ShuttingDown, VisionloopError
from visionloop.loop import Loop, wait


def bare_loop() -> Loop:
    return Loop(registry=None, ctx=SimpleNamespace(cancel=threading.Event()))


def test_wait_polls_with_the_futures_timeout_error(monkeypatch):
    """Before 3.11, `Future.result(timeout)` raises `concurrent.futures.TimeoutError`, which
    is not the built-in `TimeoutError`: simulate that, and waiting must still work."""

    class FuturesTimeout(Exception):  # 3.10's concurrent.futures.TimeoutError
        pass

    monkeypatch.setattr(futures_base, "TimeoutError", FuturesTimeout)
    monkeypatch.setattr(concurrent.futures, "TimeoutError", FuturesTimeout)
    loop = bare_loop()
    try:
        future = loop.submit(lambda ctx: time.sleep(0.35) or "done")
        assert wait(loop, future) == "done"
    finally:
        loop.close()


def interrupt_once(future: Future) -> Future:
    """Make the first wait on `future` be interrupted by Ctrl-C (as if the user pressed it)."""
    real, calls = future.result, []

    def result(timeout=None):
        if not calls:
            calls.append(1)
            raise KeyboardInterrupt
        return real(timeout)

    future.result = result
    return future


def test_ctrl_c_cancels_and_an_error_on_the_way_out_is_logged_not_lost(caplog):
    loop = bare_loop()
    started = threading.Event()

    def job(ctx):
        started.set()
        ctx.cancel.wait(10)
        raise OSError("disk full while cleaning up")  # not the Cancelled we asked for

    try:
        future = loop.submit(job)
        started.wait(10)
        with caplog.at_level(logging.WARNING, logger="visionloop.loop"):
            with pytest.raises(KeyboardInterrupt):
                wait(loop, interrupt_once(future))
        assert loop.ctx.cancel.is_set()
        assert "disk full while cleaning up" in caplog.text
    finally:
        loop.close()


def test_ctrl_c_cancels_only_the_job_waited_on_not_another_sources():
    """`chat --watch`: the chat's Ctrl-C must not stop the watcher's job that happens to run."""
    loop = bare_loop()
    started, release = threading.Event(), threading.Event()

    def watchers_job(ctx):
        started.set()
        release.wait(10)
        if ctx.cancel.is_set():
            raise Cancelled("cancelled")
        return "the watcher's file is done"

    ran = []
    try:
        theirs = loop.submit(watchers_job)
        assert started.wait(10)
        mine = loop.submit(lambda ctx: ran.append("mine"))
        with pytest.raises(KeyboardInterrupt):
            wait(loop, interrupt_once(mine))
        assert mine.cancelled() and not loop.ctx.cancel.is_set()
        release.set()
        assert theirs.result(10) == "the watcher's file is done"
        assert loop.submit(lambda ctx: "next").result(10) == "next" and ran == []  # mine never ran
    finally:
        release.set()
        loop.close()


def test_close_cancels_the_job_in_hand_fails_the_queued_and_joins():
    loop = bare_loop()
    started = threading.Event()

    def slow(ctx):
        started.set()
        for _ in range(200):  # a job that checks the cancel flag at each step, like a tool
            if ctx.cancel.is_set():
                raise Cancelled("cancelled")
            time.sleep(0.05)
        return "finished"

    ran = []
    first = loop.submit(slow)
    queued = [loop.submit(lambda ctx, i=i: ran.append(i)) for i in range(3)]
    assert started.wait(10)
    t0 = time.monotonic()
    loop.close()
    assert time.monotonic() - t0 < 3  # not the old 5 s give-up: the job stopped at its checkpoint
    assert not loop._thread.is_alive()
    with pytest.raises(Cancelled):
        first.result(0)
    for future in queued:
        error = future.exception(0)
        assert isinstance(error, ShuttingDown) and isinstance(error, VisionloopError)
        assert "shutting down" in str(error) and "not started" in str(error)
        # the watcher's runner treats a job that never started as a cancelled future (re-queued)
        assert isinstance(error, concurrent.futures.CancelledError)
    assert ran == []
    late = loop.submit(lambda ctx: "too late")  # after close: refused the same way, never run
    assert isinstance(late.exception(0), ShuttingDown)
    loop.close()  # twice is fine


def test_main_closes_the_loop_it_created(cli, example_image, monkeypatch):
    created = []
    original = Loop.__init__

    def tracking_init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        created.append(self)

    monkeypatch.setattr(Loop, "__init__", tracking_init)
    result = cli("caption", example_image)
    assert result.code == 0, result.err
    assert len(created) == 1
    assert created[0]._thread is not None and not created[0]._thread.is_alive()
