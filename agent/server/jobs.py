"""The server's jobs: what `POST /api/tools/...` and the others submit, over the one `Loop`.

A job is one callable handed to `Loop.submit`, exactly as the CLI and the chat hand theirs: a
tool call runs through `run_tool`, a workflow through `run_workflow`, a replay through
`replay`; the worker thread runs them one at a time. The server only adds bookkeeping: an id,
a status (`queued`, `running`, `done`, `failed`, `cancelled`), progress and tokens published on
the event bus, the records the job left (`runs`: ids for `/api/runs`), and a bound on how many
may wait (`QueueFull`: the API answers 429).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import secrets
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable

from visionloop import history
from visionloop.errors import Cancelled, ShuttingDown, VisionloopError
from visionloop.server.events import Bus
from visionloop.server.progress import Checkpoints

log = logging.getLogger(__name__)

KEEP_FINISHED = 500  # finished jobs remembered for GET /api/jobs/{id}


class QueueFull(Exception):
    pass


@dataclass
class Job:
    id: str
    kind: str  # "tool", "workflow", "replay"
    name: str
    args: dict
    status: str = "queued"
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    progress: dict | None = None  # {"checkpoint": N, "total": T or None, "fraction": F or None}
    result: Any = None
    error: str | None = None
    runs: list[str] = field(default_factory=list)
    future: Future | None = field(default=None, repr=False)
    done: Future = field(default_factory=Future, repr=False)  # set with the job once it has ended, however

    def to_json(self) -> dict:
        return {"id": self.id, "kind": self.kind, "name": self.name, "args": self.args, "status": self.status,
                "created": self.created, "started": self.started, "finished": self.finished,
                "progress": self.progress, "result": self.result, "error": self.error, "runs": self.runs}

    def brief(self) -> dict:
        return {k: v for k, v in self.to_json().items() if k not in ("result", "args")}


def tool_json(results) -> Any:
    """A tool call's results as the CLI's `--json` prints them: one object, or a list of several."""
    payload = [r.to_json() for r in results]
    return payload[0] if len(payload) == 1 else payload


class Jobs:
    def __init__(self, loop, bus: Bus, out_dir, max_queue: int = 16):
        self.loop = loop
        self.bus = bus
        self.out_dir = out_dir
        self.max_queue = max_queue
        self._lock = threading.Lock()
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self.on_end: list[Callable[[Job], None]] = []  # told of every job that ends (the run index)

    # --- submitting ----------------------------------------------------------------------------
    def waiting(self) -> int:
        return sum(1 for j in self._jobs.values() if j.status == "queued")

    def submit(self, kind: str, name: str, args: dict, work: Callable[[Any], tuple[Any, str | None, list[str]]],
               total: int | None = None, on_text: Callable[[str], None] | None = None,
               conversation: Callable | None = None) -> Job:
        """Queue `work(ctx)`, which returns (result JSON, error or None, run ids). `total`: the
        checkpoints expected (progress); `on_text`: also told each streamed piece of text;
        `conversation`: the context's `history` (earlier turns, for `see`). `QueueFull` when
        `max_queue` jobs wait already."""
        with self._lock:
            if self.waiting() >= self.max_queue:
                raise QueueFull(f"the queue is full ({self.max_queue} jobs waiting); try again later")
            job = Job(id=secrets.token_hex(6), kind=kind, name=name, args=args)
            self._jobs[job.id] = job
            self._forget_old()
            job.future = self.loop.submit(lambda ctx: self._run(job, work, ctx, total, on_text, conversation))
        job.future.add_done_callback(lambda fut: self._ended(job, fut))
        self.bus.publish("queued", job=job.id, kind=kind, name=name, waiting=self.waiting())
        return job

    def _forget_old(self) -> None:
        finished = [k for k, j in self._jobs.items() if j.finished is not None]
        for key in finished[:max(0, len(finished) - KEEP_FINISHED)]:
            del self._jobs[key]

    # --- running (on the loop's worker thread) -------------------------------------------------
    def _run(self, job: Job, work, ctx, total: int | None, on_text, conversation):
        job.status, job.started = "running", time.time()
        self.bus.publish("started", job=job.id, kind=job.kind, name=job.name, waiting=self.waiting())

        def checkpoint(n: int) -> None:
            fraction = min(0.99, n / total) if total else None
            job.progress = {"checkpoint": n, "total": total, "fraction": fraction}
            self.bus.publish("progress", job=job.id, **job.progress)

        def token(text: str) -> None:
            self.bus.publish("token", job=job.id, text=text)
            if on_text is not None:
                on_text(text)

        def status(line: str) -> None:
            self.bus.publish("status", job=job.id, line=line)

        run_ctx = dataclasses.replace(ctx, out_dir=self.out_dir, cancel=Checkpoints(ctx.cancel, checkpoint),
                                      on_text=token, report=status, progress=False,
                                      history=conversation)
        with history.face("server"), history.capture() as ids:
            result, error, runs = work(run_ctx)
        if job.kind == "tool" and ids:  # a tool call's record is its history row
            runs = [f"call:{i}" for i in ids]
        return result, error, runs

    def _ended(self, job: Job, fut: Future) -> None:
        try:
            if fut.cancelled():
                job.status, job.error = "cancelled", "cancelled before it started"
            else:
                exc = fut.exception()
                if isinstance(exc, Cancelled):
                    job.status, job.error = "cancelled", "cancelled"
                elif isinstance(exc, ShuttingDown):
                    job.status, job.error = "cancelled", "the server is shutting down"
                elif isinstance(exc, VisionloopError):
                    job.status, job.error = "failed", str(exc)
                elif exc is not None:
                    log.error("job %s (%s %s) crashed", job.id, job.kind, job.name, exc_info=exc)
                    job.status, job.error = "failed", f"internal error: {type(exc).__name__}: {exc}"
                else:
                    job.result, job.error, job.runs = fut.result()
                    job.status = "failed" if job.error else "done"
        finally:
            job.finished = time.time()
            if job.status == "done" and job.progress and job.progress.get("total"):
                job.progress = {**job.progress, "fraction": 1.0}
            for tell in self.on_end:
                tell(job)
            self.bus.publish("done", job=job.id, kind=job.kind, name=job.name, status=job.status, error=job.error,
                             runs=job.runs, result=job.result, waiting=self.waiting())
            job.done.set_result(job)

    # --- looking and cancelling ----------------------------------------------------------------
    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def list(self) -> list[Job]:
        return list(reversed(self._jobs.values()))

    def cancel(self, job: Job) -> None:
        """A queued job never runs; the running one stops at its next checkpoint."""
        if job.finished is not None or job.future is None:
            return
        self.bus.publish("cancelling", job=job.id)
        self.loop.cancel(job.future)

    async def wait(self, job: Job) -> Job:
        import asyncio

        return await asyncio.wrap_future(job.done)

    def wait_blocking(self, job: Job, timeout: float | None = None) -> Job:
        try:
            return job.done.result(timeout)
        except concurrent.futures.TimeoutError:
            return job
