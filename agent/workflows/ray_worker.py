"""The worker side of a batch on Ray: an actor that runs the workflow engine on its items.

Ray Data makes one `WorkflowActor` per worker (`map_batches` with an actor pool). Its
constructor builds what a visionloop process has, once: the plugin registry, a `Context` with
its own `ModelCache`, and a `Loop`; each item is then an ordinary `run_workflow` through that
loop, exactly as the in-process batch runs it, so the models load once per actor and an item
gives the same run folder, manifest and pixels as it would in-process (same config, seeds,
device, dtype and `threads`). Nothing of an item escapes as an exception: a failure is the
item's row, so one bad picture never stops the batch.

Rows travel back as `{"file": ..., "item": JSON of a BatchItem}`; the driver
(`visionloop.workflows.ray_engine`) turns them back into `BatchItem`s for the summary.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from visionloop.errors import VisionloopError
from visionloop.workflows.batch import BatchItem


def item_to_row(item: BatchItem) -> str:
    return json.dumps(dataclasses.asdict(item), ensure_ascii=False, default=str)


def item_from_row(row: str) -> BatchItem:
    return BatchItem(**json.loads(row))


class WorkflowActor:
    """Built once per Ray worker; called with batches `{"file": [...], "path": [...]}` (the
    file as the user named it, and the absolute path the worker reads)."""

    def __init__(self, config, wf, inputs: dict[str, Any], name: str, out_dir: str):
        from visionloop.context import Context
        from visionloop.loop import Loop
        from visionloop.plugins import load_registry, run_startup

        registry = load_registry(config.plugins.paths)
        run_startup(registry, config)
        self.wf, self.inputs, self.name, self.out_dir = wf, inputs, name, Path(out_dir)
        self.registry = registry
        # progress off: a worker has no terminal (the driver shows one bar for the batch)
        self.loop = Loop(registry, Context.create(config, out_dir, progress=False))

    def run(self, file: str, path: str) -> BatchItem:
        from visionloop.loop import wait
        from visionloop.workflows.engine import run_workflow

        inputs = {**self.inputs, self.name: path}

        def job(ctx):
            return run_workflow(self.wf, inputs, ctx, self.registry, self.out_dir)

        try:
            return BatchItem.of(wait(self.loop, self.loop.submit(job)), file)
        except VisionloopError as exc:  # e.g. the file vanished before its turn, as in-process
            return BatchItem(file, "failed", error=str(exc), workflow=self.wf.name)
        except Exception as exc:  # noqa: BLE001  (a bug, or the worker's environment: only this item fails)
            return BatchItem(file, "failed", error=f"internal error on the Ray worker: {type(exc).__name__}: {exc}",
                             workflow=self.wf.name)

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        rows = [item_to_row(self.run(str(f), str(p))) for f, p in zip(batch["file"], batch["path"])]
        return {"file": np.asarray([str(f) for f in batch["file"]], dtype=object),
                "item": np.asarray(rows, dtype=object)}
