"""What the model-family tests share: a context whose profile draws with a tiny family folder,
one tool call that must succeed, pixels of a result, and the raw diffusers pipeline to compare with."""

from __future__ import annotations

import numpy as np
from PIL import Image

from visionloop.tools import run_tool


def make_ctx(tiny_config, folder, out, **changes):
    """A context whose profile's `diffusion.model` is `folder`, with other `diffusion` settings changed."""
    from visionloop.context import Context

    config = tiny_config.model_copy(deep=True)
    spec = config.profiles[config.profile].diffusion
    spec.model = str(folder)
    for key, value in changes.items():
        setattr(spec, key, value)
    return Context.create(config, out)


def run_step(ctx, registry, tool, seed, **args):
    """One call of `tool` (2 steps, `seed`) that must succeed; its one result."""
    (result,) = run_tool(registry.tool(tool), {"steps": 2, "seed": seed, **args}, ctx)
    assert result.ok, result.error
    return result


def pixels(image) -> np.ndarray:
    return np.asarray((Image.open(image) if not isinstance(image, Image.Image) else image).convert("RGB"))


def raw_pipe(cls_name: str, data):
    """The diffusers class `cls_name` loaded from the folder a result names, in the dtype it recorded."""
    import diffusers
    import torch

    pipe = getattr(diffusers, cls_name).from_pretrained(data["model"], use_safetensors=True, local_files_only=True,
                                                        torch_dtype=getattr(torch, data["dtype"]))
    pipe.set_progress_bar_config(disable=True)
    return pipe
