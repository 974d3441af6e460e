"""Whether a value in a workflow fits where it is used, decided before any model loads.

Three kinds of value reach a tool argument:

- a literal (`strength: 0.6`): checked by the tool's own rule, `visionloop.values.coerce_value`
  (type, range, choices, text length), plus the diffusion tools' size rule against the profile;
- one whole reference (`${inputs.X}`, `${steps.ID.image}`): it keeps the referenced value's
  type, so that type must fit the argument (`REF_ACCEPTS`), and an input's default must fit it
  as a literal would;
- text with references inside: its literal part alone must not already be too long.

A reference into a step's result must also name something the step's tool returns, where the
tool declares it (`Tool.returns_images`, `Tool.data_keys`): no `.image` of a tool that never
returns one, no `.data.KEY` for a key it never sets.
"""

from __future__ import annotations

from typing import Any

from visionloop.tools import RUN_DATA_KEYS, Input, Tool
from visionloop.values import coerce_value
from visionloop.workflows.refs import Ref, literal_part
from visionloop.workflows.schema import InputSpec
from visionloop.yamlsource import did_you_mean

#: Which referenced types an argument of each type takes. A whole reference keeps its value's
#: type, and `coerce_value` runs only after the models load, so a misfit is caught here. Text
#: takes every single value (an image is its path, a choice or a number its text); box and size
#: are tuples, which text refuses. An image argument takes only images: a text input is not
#: checked to be an existing file before the run, so it has to be declared `type: image`.
#: A float takes an int; nothing else is widened (a choice is text, even "7").
REF_ACCEPTS = {"text": {"text", "image", "choice", "int", "float", "bool"}, "image": {"image"}, "int": {"int"},
               "float": {"int", "float"}, "bool": {"bool"}, "choice": {"choice"}, "box": {"box"}, "size": {"size"}}


def input_as_tool_input(name: str, spec: InputSpec) -> Input:
    """A workflow input checked exactly like a tool argument (`visionloop.values.coerce_value`)."""
    return Input(name, spec.type, spec.default, spec.description, choices=tuple(spec.choices),
                 min=spec.min, max=spec.max)


def _a(word: str) -> str:
    return ("an " if word[:1] in "aeiou" else "a ") + word


def literal_problem(inp: Input, value: Any, config=None) -> str | None:
    """Why a literal YAML value does not fit `inp`, or None. YAML turns unquoted `no`, `yes`
    and `1.10` into a bool or a number; a text argument refuses them and says to quote. With
    `config`, literal sizes for the diffusion tools follow the active profile."""
    if inp.type in ("text", "image") and isinstance(value, (bool, float, int)) and not isinstance(value, str):
        shown = {True: "yes/true", False: "no/false"}.get(value, repr(value)) if isinstance(value, bool) else repr(value)
        return f"expected text, got {type(value).__name__} {shown} (quote the value to keep it as text)"
    try:
        if inp.multiple and isinstance(value, list):
            for v in value:
                coerce_value(inp, v)
        else:
            if isinstance(value, list) and inp.type not in ("box", "size"):
                return f"expected one value, got a list of {len(value)}"
            coerce_value(inp, value)
    except ValueError as exc:
        return str(exc)
    return _diffusion_rules(inp, value, config)


def _diffusion_rules(inp: Input, value: Any, config) -> str | None:
    """The draw/edit/restyle rules for a literal scheduler (`resolve_scheduler`) and, against the
    active profile, width, height or size (`side_problem`, as `pick_size` applies it); only for
    tools that declare those shared inputs (`visionloop.toolkit.diffusion.common_inputs`)."""
    from visionloop.toolkit.diffusion import common_inputs, side_problem

    if inp not in common_inputs():
        return None
    if inp.name == "scheduler":
        from visionloop.errors import InputError
        from visionloop.models.schedulers import resolve_scheduler

        try:
            resolve_scheduler(value)
        except InputError as exc:
            return str(exc).removeprefix("scheduler: ")
        return None
    if config is None or inp.name not in ("width", "height", "size"):
        return None
    value = coerce_value(inp, value)
    sides = zip(("width", "height"), value) if inp.name == "size" else [(inp.name, value)]
    for side, v in sides:
        problem = side_problem(config, side, v)
        if problem:
            return f"{side} {problem}"
    return None


def template_problem(inp: Input, text: str) -> str | None:
    """Text with references inside: too long for `inp` before a single reference is filled in."""
    fixed = len(literal_part(text))
    if inp.max_chars is not None and fixed > inp.max_chars:
        return f"too long ({fixed} characters before its references are filled in; at most {inp.max_chars})"
    return None


def ref_type_problem(ref: Ref, inp: Input, tool: Tool, input_specs: dict[str, InputSpec], config=None) -> str | None:
    """Why the value `ref` gives cannot feed `inp`, or None (also when its type is unknown:
    `data.KEY`, an input that is itself invalid, or a reference reported as unknown). An input
    with a default must take it as a literal would."""
    target = f"{tool.name}'s {inp.name!r} takes {_a(inp.type)}"
    if ref.kind == "inputs":
        spec = input_specs.get(ref.name)
        if spec is None:
            return None
        kind, what = spec.type, f"{ref} is {_a(spec.type)} input"
        hint = f" (declare the input `type: {inp.type}`)"
    elif ref.field in ("text", "image", "images"):
        kind = "text" if ref.field == "text" else "image"
        what = f"{ref} is " + {"text": "text", "image": "an image", "images": "a list of images"}[ref.field]
        hint = " (a step's image is ${steps.ID.image})" if inp.type == "image" else ""
    else:
        return None  # data.KEY: whatever the tool put there, checked at run time
    if kind not in REF_ACCEPTS[inp.type]:
        return f"{what} but {target}{hint}"
    if kind == "choice" and inp.type == "choice":
        extra = [c for c in input_specs[ref.name].choices if c not in inp.choices]
        if extra:
            return (f"{ref} may be {', '.join(map(repr, extra))}, which {tool.name}'s {inp.name!r} does not take "
                    f"(it takes: {', '.join(inp.choices)})")
    if ref.kind == "inputs" and spec.default is not None and inp.type in (kind, "float"):
        why = literal_problem(inp, spec.default, config)
        if why:
            shown = repr(spec.default) if len(repr(spec.default)) <= 40 else repr(spec.default)[:37] + "..."
            return f"{ref}: its default {shown} does not fit {tool.name}'s {inp.name!r}: {why}"
    return None


def result_problem(ref: Ref, tool: Tool) -> str | None:
    """Why `ref` (into the result of a step that runs `tool`) names something the tool declares
    it never returns, or None (also when the tool declares nothing)."""
    if ref.field in ("image", "images") and tool.returns_images is False:
        return (f"{ref}: step {ref.name!r} runs {tool.name}, which returns no image "
                f"(its result is ${{steps.{ref.name}.text}} and ${{steps.{ref.name}.data.KEY}})")
    if ref.field == "data" and tool.sets_data_key(ref.key) is False:
        batch = ("results",) if tool.each else ()  # several values for `each`: one data per result
        if ref.key in batch:
            return None
        keys = sorted({*tool.data_keys, *RUN_DATA_KEYS, *batch})
        return (f"{ref}: {tool.name} never sets data key {ref.key!r}{did_you_mean(ref.key, keys)} "
                f"(it sets: {', '.join(keys)})")
    return None
