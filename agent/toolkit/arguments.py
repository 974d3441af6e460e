"""Command-line options from a tool's declared inputs.

The CLI generates one sub-command per tool from these, and the chat's `/tool args` commands
parse with the same options (every one optional there: the chat fills images and text from the
conversation), so a third-party tool gets both with no face code.
"""

from __future__ import annotations

import argparse
import dataclasses

from visionloop.tools import Tool
from visionloop.values import coerce_value

_METAVARS = {"image": "IMAGE", "int": "N", "float": "F", "text": "TEXT", "box": "x0,y0,x1,y1", "size": "WxH"}



def _shape_check(inp):
    """An argparse `type` that checks a value parses as the input's type (range aside)."""
    if inp.type not in ("int", "float", "box", "size"):
        return None
    shape_only = dataclasses.replace(inp, min=None, max=None)

    def parse(text: str):
        try:
            coerce_value(shape_only, text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text  # check_args converts it, as it does for values from workflows and the chat

    parse.__name__ = {"int": "whole number", "float": "number"}.get(inp.type, inp.type)
    return parse


def add_input_argument(p: argparse.ArgumentParser, inp, chat: bool = False) -> None:
    """Add one tool input to `p`. Shared by the generated sub-commands and the chat's
    `/tool ...` commands; `chat=True` makes every input an optional flag, because the chat
    fills positional images and text from the conversation itself."""
    extra = []
    if inp.default is not None and inp.type != "bool":
        extra.append(f"default: {inp.default}")
    if inp.choices:
        extra.append("one of: " + ", ".join(inp.choices))
    if "-q" in inp.flags and not chat:  # elsewhere -q is the global --quiet
        extra.append("-q is this option here; quiet is written --quiet")
    help_text = inp.help + (f" ({'; '.join(extra)})" if extra else "")
    metavar = _METAVARS.get(inp.type)
    if inp.positional and not chat:
        nargs = ("+" if inp.required else "*") if inp.multiple else (None if inp.required else "?")
        p.add_argument(inp.name, nargs=nargs, metavar=metavar, help=help_text)
        return
    # short flags first, as `-h, --help` reads: `see`'s `-q QUESTION, --question QUESTION`
    short = [f for f in inp.flags if not f.startswith("--")]
    flags = [*short, f"--{inp.name.replace('_', '-')}", *[f for f in inp.flags if f.startswith("--")]]
    if short and inp.type == "text":  # `-q TEXT` would not say what the short flag is
        metavar = inp.name.upper()
    if inp.type == "bool":
        p.add_argument(*flags, dest=inp.name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
    else:
        # choices and the value's shape go to argparse too: `--steps abc` or a value outside
        # the choices is a usage error (exit 2); a well-formed value out of range is the
        # tool's input error (exit 1), checked by check_args like values from any source.
        p.add_argument(*flags, dest=inp.name, metavar=metavar, default=None, required=inp.required and not chat,
                       action="append" if inp.multiple else "store", choices=inp.choices or None,
                       type=_shape_check(inp), help=help_text)


def tool_values(args: argparse.Namespace, tool: Tool, stdin: bool = True) -> dict:
    """The tool arguments actually given on a parsed command line. With `stdin` (the CLI; never the
    chat, whose stdin is the conversation), `-` for an image is the image piped in (`stdin_images`)."""
    values = {i.name: getattr(args, i.name) for i in tool.inputs if getattr(args, i.name, None) not in (None, [])}
    return stdin_images(values, tool) if stdin else values


def stdin_images(values: dict, tool: Tool) -> dict:
    """`-` given for an image (`caption -`, `see - -q ...`, `read-text -`): the image piped in on
    standard input, named `<stdin>` in messages and data; read when the tool loads it, bounded by
    the configured file-size limit (`visionloop.images.stdin`)."""
    from visionloop.images.stdin import DASH, STDIN, claim

    for inp in tool.inputs:
        value = values.get(inp.name)
        items = value if isinstance(value, list) else [value]
        if inp.type == "image" and DASH in items:
            claim()
            items = [STDIN if item == DASH else item for item in items]
            values[inp.name] = items if isinstance(value, list) else items[0]
    return values
