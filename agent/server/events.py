"""Live events for `GET /api/events` (server-sent events): the queue changing, a job's
progress (denoising steps, tokens as they stream, model loads), results.

`Bus.publish` may be called from any thread (the job loop's worker publishes progress); each
subscriber is an asyncio queue on the server's event loop, fed with `call_soon_threadsafe`. A
subscriber that does not keep up loses events (its queue is bounded), never slows a job.

Event types: `queued`, `started`, `progress`, `token`, `status` (a line such as a model load),
`done` (the job's final record), `cancelling`. Each is sent as
`id: N`, `event: TYPE`, `data: {"type": TYPE, "job": ID, ...}`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from typing import AsyncIterator

SUBSCRIBER_QUEUE = 1000  # events a slow subscriber may fall behind before it loses some
HEARTBEAT = 15.0  # seconds between keep-alive comments on an idle stream


class Bus:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: set[tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = set()
        self._ids = itertools.count(1)

    def publish(self, event_type: str, /, **data) -> None:
        event = {"type": event_type, "time": round(time.time(), 3), **data}
        with self._lock:
            event["id"] = next(self._ids)
            subscribers = list(self._subscribers)
        for loop, queue in subscribers:
            try:
                loop.call_soon_threadsafe(_offer, queue, event)
            except RuntimeError:  # that event loop has closed
                self.unsubscribe((loop, queue))

    def subscribe(self) -> tuple[asyncio.AbstractEventLoop, asyncio.Queue]:
        handle = (asyncio.get_running_loop(), asyncio.Queue(SUBSCRIBER_QUEUE))
        with self._lock:
            self._subscribers.add(handle)
        return handle

    def unsubscribe(self, handle) -> None:
        with self._lock:
            self._subscribers.discard(handle)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)


def _offer(queue: asyncio.Queue, event: dict) -> None:
    try:
        queue.put_nowait(event)
    except asyncio.QueueFull:
        pass


def sse(event: dict) -> str:
    return f"id: {event['id']}\nevent: {event['type']}\ndata: {json.dumps(event, ensure_ascii=False, default=str)}\n\n"


async def stream(bus: Bus, request, job: str | None = None, types: set[str] | None = None,
                 limit: int | None = None) -> AsyncIterator[str]:
    """Events as SSE text until the client leaves (or `limit` events were sent); only those of
    `job` and of `types` when given."""
    handle = bus.subscribe()
    sent = 0
    try:
        yield ": connected\n\n"
        while limit is None or sent < limit:
            try:
                event = await asyncio.wait_for(handle[1].get(), HEARTBEAT)
            except asyncio.TimeoutError:
                if await request.is_disconnected():
                    return
                yield ": ping\n\n"
                continue
            if job is not None and event.get("job") != job:
                continue
            if types is not None and event["type"] not in types:
                continue
            yield sse(event)
            sent += 1
    finally:
        bus.unsubscribe(handle)
