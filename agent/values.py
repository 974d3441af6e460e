"""Argument values from any source, checked by one rule: strings from the CLI and the chat,
YAML scalars from workflows, JSON from a replayed manifest. `coerce_value` turns one value into
its input's declared type and range; `check_args` checks a whole call against a tool's inputs.
Workflow validation applies the same `coerce_value` to literals before anything runs.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from visionloop.errors import InputError

if TYPE_CHECKING:
    from visionloop.tools import Input, Tool

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _parse_numbers(text: str, sep: str, count: int, what: str) -> tuple[int, ...]:
    parts = [p.strip() for p in str(text).lower().split(sep)]
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != count:
        raise ValueError(f"expected {what}")
    return values


def show_number(x: float) -> str:
    """A limit or value as the user would type it: whole numbers in full (9223372036854775807,
    not 9.22337e+18; 1, not 1.0), others as written (1.0000001, not 1)."""
    if isinstance(x, int) or (isinstance(x, float) and x.is_integer() and abs(x) < 2**53):
        return str(int(x))
    return repr(x)


def coerce_value(inp: Input, value: Any) -> Any:
    """Turn one raw value into `inp`'s type; raise ValueError with the reason otherwise."""
    t = inp.type
    if isinstance(value, str) and not value.strip():  # from any source: `draw ""`, `--mask ""`, `prompt: ""`
        raise ValueError("expected a file path, got an empty string" if t == "image" else "must not be empty")
    if t in ("text", "image"):
        if isinstance(value, (dict, list, tuple)):
            raise ValueError(f"expected {'a file path' if t == 'image' else 'text'}, got a {type(value).__name__}")
        value = str(value)
        if inp.max_chars is not None and len(value) > inp.max_chars:
            raise ValueError(f"too long ({len(value)} characters; at most {inp.max_chars})")
        return value
    if t == "int":
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError(f"expected a whole number, got {value!r}")
        try:
            value = int(str(value).strip()) if not isinstance(value, (int, float)) else int(value)
        except ValueError:
            raise ValueError(f"expected a whole number, got {value!r}") from None
    elif t == "float":
        if isinstance(value, bool):
            raise ValueError(f"expected a number, got {value!r}")
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"expected a number, got {value!r}") from None
        if value != value:  # NaN
            raise ValueError("expected a number, got NaN")
    elif t == "bool":
        if isinstance(value, bool):
            return value
        s = str(value).strip().lower()
        if s in _TRUE:
            return True
        if s in _FALSE:
            return False
        raise ValueError(f"expected true or false, got {value!r}")
    elif t == "choice":
        value = str(value)
        if value not in inp.choices:
            raise ValueError(f"expected one of {', '.join(inp.choices)}, got {value!r}")
        return value
    elif t == "box":
        if isinstance(value, (list, tuple)):
            value = ",".join(str(v) for v in value)
        return _parse_numbers(value, ",", 4, "four whole numbers x0,y0,x1,y1")
    elif t == "size":
        if isinstance(value, (list, tuple)):
            value = "x".join(str(v) for v in value)
        return _parse_numbers(value, "x", 2, "WIDTHxHEIGHT, e.g. 512x512")
    if inp.min is not None and value < inp.min:
        raise ValueError(f"must be at least {show_number(inp.min)}, got {show_number(value)}")
    if inp.max is not None and value > inp.max:
        raise ValueError(f"must be at most {show_number(inp.max)}, got {show_number(value)}")
    return value


def check_args(tool: Tool, args: dict[str, Any]) -> dict[str, Any]:
    """Coerce `args` to `tool`'s declared inputs and fill in defaults.

    Raises `InputError` naming every problem at once (`--strength: must be at most 1, got 1.5`).
    Unknown names, missing required inputs, wrong types and out-of-range values are all caught
    here, before any model loads.
    """
    problems: list[str] = []
    known = {i.name for i in tool.inputs}
    for name in args:
        if name not in known:
            problems.append(f"{tool.name} takes no argument {name!r} (it takes: {', '.join(sorted(known))})")
    out: dict[str, Any] = {}
    for inp in tool.inputs:
        value = args.get(inp.name)
        if value is None:
            if inp.required:
                problems.append(f"{inp.name}: required")
            out[inp.name] = list(inp.default) if inp.multiple and inp.default else inp.default
            continue
        try:
            if inp.multiple:
                values = value if isinstance(value, (list, tuple)) else [value]
                if inp.required and not values:
                    raise ValueError("required")
                out[inp.name] = [coerce_value(inp, v) for v in values]
            else:
                if isinstance(value, (list, tuple)) and inp.type not in ("box", "size"):
                    raise ValueError(f"expected one value, got a list of {len(value)}")
                out[inp.name] = coerce_value(inp, value)
        except ValueError as exc:
            problems.append(f"{inp.name}: {exc}")
    if problems:
        raise InputError("; ".join(problems))
    return out


def absolute_images(tool: Tool, args: dict[str, Any]) -> dict[str, Any]:
    """Image paths as absolute paths, so that every record (`data`, PNG metadata, manifests)
    can be replayed from any folder. Symlinks are kept: the user named that path."""
    from visionloop.images.stdin import STDIN  # an image piped in is named, not a path
    from visionloop.paths import user_path

    out = dict(args)
    for inp in tool.inputs:
        value = out.get(inp.name)
        absolute = lambda v: os.path.abspath(user_path(v, inp.name)) if isinstance(v, str) and v != STDIN else v  # noqa: E731
        if inp.type == "image" and value is not None:
            out[inp.name] = [absolute(v) for v in value] if isinstance(value, list) else absolute(value)
    return out
