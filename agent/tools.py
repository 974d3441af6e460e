"""Tools, their inputs, calls and results: the one vocabulary shared by the CLI, the chat,
workflows and the watcher.

A tool is a plain function with declared inputs. It knows nothing of where a call came from;
`run_tool()` is the one place where its arguments are checked and where its errors become data.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from visionloop.errors import Cancelled, InputError, VisionloopError
from visionloop.values import absolute_images, check_args

log = logging.getLogger(__name__)

#: Input types a tool may declare. Values arrive as strings from the CLI and the chat and as
#: YAML scalars from workflows; `coerce_value` turns both into the declared type.
INPUT_TYPES = ("text", "int", "float", "bool", "image", "choice", "box", "size")



@dataclass(frozen=True)
class Input:
    """One declared argument of a tool.

    `image` inputs are file paths (the tool loads them with `visionloop.images.load_image`);
    `box` is `(x0, y0, x1, y1)`; `size` is `(width, height)` from `WxH`.
    """

    name: str
    type: str = "text"
    default: Any = None
    help: str = ""
    required: bool = False
    multiple: bool = False  # accepts a list of values (the CLI takes several)
    positional: bool = False  # the CLI takes it as a positional argument
    flags: tuple[str, ...] = ()  # extra CLI spellings, e.g. ("-q",)
    choices: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None
    max_chars: int | None = None  # text: the longest value the tool takes (checked by `coerce_value`)

    def __post_init__(self):
        if self.type not in INPUT_TYPES:
            raise ValueError(f"input {self.name!r}: unknown type {self.type!r}")

    def describe(self) -> dict:
        """The JSON form shown by `visionloop tools --json` and used by workflow validation."""
        out = {"name": self.name, "type": self.type, "default": self.default, "help": self.help,
               "required": self.required, "multiple": self.multiple}
        if self.choices:
            out["choices"] = list(self.choices)
        if self.min is not None:
            out["min"] = self.min
        if self.max is not None:
            out["max"] = self.max
        if self.max_chars is not None:
            out["max_chars"] = self.max_chars
        return out


@dataclass
class Tool:
    """A registered tool.

    `run(ctx, **args)` returns a `ToolResult`. When `each` names an input, a call with several
    values for it runs once per value and gives one result each (`caption a.png b.png`).

    What a successful result holds may be declared, so that a workflow referring to it is
    checked before any model loads (`${steps.ID.image}`, `${steps.ID.data.KEY}`):

    - `returns_images`: True when the tool saves images (draw), False when it never does
      (caption); None (the default) leaves it undeclared and unchecked.
    - `data_keys`: every key the tool may put in `ToolResult.data` (not all on every call: the
      union over its code paths); None (the default) leaves it undeclared and unchecked. The
      keys `run_tool` adds itself (`RUN_DATA_KEYS`) need not be listed.
    - `streams_text`: True when the tool writes its answer through `ctx.on_text` as it is
      generated (see, caption); the CLI then shows it token by token on a terminal.
    """

    name: str
    description: str
    inputs: list[Input]
    run: Callable[..., "ToolResult"]
    each: str | None = None
    plugin: str = ""  # filled in by the registry: which plugin provided the tool
    returns_images: bool | None = None
    data_keys: tuple[str, ...] | None = None
    streams_text: bool = False
    #: optional: `run_batch(ctx, calls)` runs several `each` calls together (a batched model call)
    #: and returns one result per call, in order, or None to have them run one by one
    run_batch: Callable[..., list["ToolResult"] | None] | None = None

    def input(self, name: str) -> Input | None:
        return next((i for i in self.inputs if i.name == name), None)

    def sets_data_key(self, key: str) -> bool | None:
        """Whether a successful result's `data` can hold `key`; None when `data_keys` is undeclared."""
        return None if self.data_keys is None else key in self.data_keys or key in RUN_DATA_KEYS

    def describe(self) -> dict:
        return {"name": self.name, "description": self.description,
                "inputs": [i.describe() for i in self.inputs],
                "returns": {"images": self.returns_images,
                            "data": None if self.data_keys is None else sorted({*self.data_keys, *RUN_DATA_KEYS})}}


@dataclass
class ToolCall:
    """A request to run `tool` with `args` (raw values; `run_tool` coerces them)."""

    tool: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class ToolResult:
    """What a tool gives back. `--json` prints exactly these five keys.

    `data` holds everything needed to reproduce the call: the model actually loaded, the
    exact prompt, the seed and every parameter, timings.
    """

    tool: str
    text: str = ""
    images: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> dict:
        return asdict(self)


# --- running ---------------------------------------------------------------------------------

#: `data` keys `run_tool` puts in every successful result, whatever the tool.
RUN_DATA_KEYS = ("seconds",)


def run_tool(tool: Tool, args: dict[str, Any], ctx) -> list[ToolResult]:
    """Run one call and return its results: the one place where tool errors become data.

    A `VisionloopError` (bad image, bad value, model not cached) becomes a result whose
    `error` is its one-line message. Any other exception is a bug in the tool: it is logged
    with its traceback and also becomes an error result, so one broken tool never takes down
    the chat or the watcher. Only `Cancelled` propagates, because the caller asked for it.
    """
    try:
        checked = absolute_images(tool, check_args(tool, args))
    except InputError as exc:
        return [ToolResult(tool=tool.name, error=str(exc))]
    if tool.each and isinstance(checked.get(tool.each), list):
        calls = [{**checked, tool.each: v} for v in checked[tool.each]]
    else:
        calls = [checked]
    batched = _run_batch(tool, calls, ctx)
    results = []
    for n, call in enumerate(calls):
        started = time.perf_counter()
        try:
            result = batched[n] if batched is not None else tool.run(ctx, **call)
        except Cancelled:
            _remember(tool, call, ToolResult(tool=tool.name, error="cancelled"), ctx)
            raise
        except VisionloopError as exc:
            log.info("tool %s failed", tool.name, exc_info=True)  # -v shows the traceback
            result = ToolResult(tool=tool.name, error=str(exc))
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # a bug in the tool: keep the process alive, say what happened
            log.info("tool %s crashed", tool.name, exc_info=True)  # -v shows the traceback
            result = ToolResult(tool=tool.name, error=f"{tool.name} failed: {type(exc).__name__}: {exc}")
        if result.error is not None:  # say what was asked, so a failed item names its inputs
            result.data.setdefault("args", {k: v for k, v in call.items() if v is not None})
        result.data.setdefault("seconds", round(time.perf_counter() - started, 4))
        _remember(tool, call, result, ctx)
        results.append(result)
    return results


def _run_batch(tool: Tool, calls: list[dict], ctx) -> list[ToolResult] | None:
    """The results of `tool.run_batch` for several calls, or None (run them one by one): when the
    tool has none, declines, or fails as a whole (each call then runs, and fails, alone)."""
    if tool.run_batch is None or len(calls) < 2:
        return None
    started = time.perf_counter()
    try:
        results = tool.run_batch(ctx, calls)
    except (Cancelled, KeyboardInterrupt):
        raise
    except Exception:  # noqa: BLE001 - one at a time then says which call fails and why
        log.info("tool %s: the batched run failed; running the calls one by one", tool.name, exc_info=True)
        return None
    if results is None or len(results) != len(calls):
        return None
    share = round((time.perf_counter() - started) / len(calls), 4)
    for result in results:
        result.data.setdefault("seconds", share)
    return results


def _remember(tool: Tool, args: dict, result: ToolResult, ctx) -> None:
    """Add the call to the history (`visionloop.history`); a history that cannot be written
    never fails the call, it is only logged."""
    try:
        from visionloop.history import record

        record(tool.name, args, result, ctx)
    except Exception:  # noqa: BLE001 - sqlite, a full disk, an odd value: the call still stands
        global _history_warned
        log.log(logging.DEBUG if _history_warned else logging.WARNING, "history: could not record a %s call",
                tool.name, exc_info=True)
        _history_warned = True


_history_warned = False  # the first failure to record is a warning, later ones debug lines
