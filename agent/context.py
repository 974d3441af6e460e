"""`Context`: what a tool receives besides its arguments.

It carries the configuration, the shared `ModelCache`, the output folder, whether to show
progress bars, an optional streaming callback, the chat's optional conversation history and the
cancel flag. Tools reach models only
through `ctx.models`, so every tool in a process shares the same weights.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from visionloop.config import Config
from visionloop.images import load_image
from visionloop.models.cache import ModelCache
from visionloop.paths import user_path


@dataclass
class Context:
    config: Config
    models: ModelCache
    out_dir: Path
    progress: bool = False  # draw progress bars (a terminal, and not --json)
    on_text: Callable[[str], None] | None = None  # streamed text (the chat; see/caption on a terminal)
    # progress lines as the work happens ("loading LLaVA ...", "step 2/3 draw: started"): set by
    # the CLI on a terminal (stderr; never under --json or -q); None prints nothing
    report: Callable[[str], None] | None = None
    # The chat's memory for follow-up questions: history(images, fits) returns the earlier
    # (question, answer) turns about `images`, oldest dropped until `fits(turns)` holds, and
    # how many were dropped. Only tools that ask for conversation consult it (`see`).
    history: Callable[[list[str], Callable[[list[tuple[str, str]]], bool]],
                      tuple[list[tuple[str, str]], int]] | None = None
    cancel: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def create(cls, config: Config, out_dir: str | Path | None = None, **kwargs) -> "Context":
        return cls(config=config, models=ModelCache(config), out_dir=user_path(out_dir or config.output),
                   **kwargs)

    def load_image(self, path: str, mode: str = "RGB"):
        """Load an input image with the configured limits (pixel count, file size)."""
        limits = self.config.images
        return load_image(path, max_pixels=limits.max_pixels, max_file_mb=limits.max_file_mb, mode=mode)
