"""Live progress of a job, without any tool or backend knowing about the server.

Every long job already checks its cancel flag at each checkpoint: Stable Diffusion after each
denoising step (and before each image), LLaVA at each generated token. `Checkpoints` stands in
for the job's cancel flag (it delegates to the loop's, so `Loop.cancel` still works) and counts
those checks: for the Stable Diffusion tools the count is the denoising step, and the expected
total follows from the arguments (`expected_checkpoints`). Tokens stream through `on_text`.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

MIN_INTERVAL = 0.05  # seconds between two progress events of one job (a fast model checks often)


class Checkpoints:
    """A `threading.Event` look-alike over the loop's cancel flag that reports each `is_set()`."""

    def __init__(self, flag: threading.Event, on_checkpoint: Callable[[int], None]):
        self._flag = flag
        self._on = on_checkpoint
        self.count = 0
        self._last = 0.0

    def is_set(self) -> bool:
        self.count += 1
        now = time.monotonic()
        if now - self._last >= MIN_INTERVAL:
            self._last = now
            try:
                self._on(self.count)
            except Exception:  # noqa: BLE001 - progress is a courtesy: it never stops the job
                pass
        return self._flag.is_set()

    def set(self) -> None:
        self._flag.set()

    def clear(self) -> None:
        self._flag.clear()

    def wait(self, timeout: float | None = None) -> bool:
        return self._flag.wait(timeout)

    isSet = is_set


def expected_checkpoints(tool, args: dict, config) -> int | None:
    """How many checkpoints a Stable Diffusion tool passes: per image, one before it and one per
    denoising step (with a `strength`, the steps it actually runs). None for other tools."""
    if tool.input("steps") is None or tool.input("prompt") is None:
        return None
    try:
        steps = int(args.get("steps") or config.active.diffusion.steps)
        count = int(args.get("count") or 1)
        strength = args.get("strength")
        if strength is None and tool.input("strength") is not None:
            strength = tool.input("strength").default
        if strength is not None:
            steps = max(1, min(steps, int(steps * float(strength))))
        return count * (steps + 1)
    except (TypeError, ValueError):
        return None
