"""Fake tools for the workflow tests: instant, deterministic, no model. Registered with
`load_registry(extra=[workflow_fakes])` or copied into a `plugins.paths` folder for CLI tests.
`paint` and `look` declare what they return (checked by `validate`); `echo` and `boom` do not
(so what they return is only known at run time)."""

import random
import time

from visionloop.errors import InputError
from visionloop.hookspecs import hookimpl
from visionloop.images import save_image
from visionloop.tools import Input, Tool, ToolResult

CALLS: list[tuple[str, dict]] = []  # every call, in order, so tests can see what a tool got


def echo(ctx, text, times=1):
    CALLS.append(("echo", {"text": text, "times": times}))
    return ToolResult(tool="echo", text=text * times, data={"length": len(text) * times, "words": text.split()})


def paint(ctx, prompt, strength=0.5, seed=None, image=None):
    """A 'drawing' whose pixels depend only on prompt, strength and seed (random when not given)."""
    CALLS.append(("paint", {"prompt": prompt, "strength": strength, "seed": seed, "image": image}))
    if image is not None:
        ctx.load_image(image)  # a broken input image fails here, like a real tool
    seed = random.randrange(2**31) if seed is None else seed
    rng = random.Random(f"{prompt}|{strength}|{seed}")
    from PIL import Image

    img = Image.frombytes("RGB", (8, 8), bytes(rng.getrandbits(8) for _ in range(8 * 8 * 3)))
    path = save_image(img, ctx.out_dir, "paint", {"prompt": prompt, "seed": seed, "time": time.time()})
    return ToolResult(tool="paint", images=[str(path)], data={"seed": seed, "model": "fake-paint"})


def look(ctx, image):
    CALLS.append(("look", {"image": image}))
    img = ctx.load_image(image)
    return ToolResult(tool="look", text=f"{img.width}x{img.height}", data={"width": img.width})


def boom(ctx, text="x"):
    CALLS.append(("boom", {"text": text}))
    raise InputError(f"boom: refused {text!r}")


@hookimpl
def register_tools(register):
    register(Tool("echo", "repeat text", [Input("text", "text", required=True),
                                          Input("times", "int", 1, min=1, max=5)], echo))
    register(Tool("paint", "fake drawing", [Input("prompt", "text", required=True),
                                            Input("strength", "float", 0.5, min=0.0, max=1.0),
                                            Input("seed", "int", None, min=0),
                                            Input("image", "image", None)], paint,
                  returns_images=True, data_keys=("seed", "model")))
    register(Tool("look", "fake caption", [Input("image", "image", required=True, multiple=True)], look,
                  each="image", returns_images=False, data_keys=("width",)))
    register(Tool("boom", "always fails", [Input("text", "text", "x")], boom))
