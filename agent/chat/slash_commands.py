"""Explicit `/tool args` commands in the chat, and filling a call from the conversation.

`/edit --box 10,10,90,90 a red hat` takes the same options as `visionloop edit` (the parser is
built from the tool's inputs by the CLI's own `add_input_argument`), every option optional:
`fill()` completes the call from the conversation (the current image, `#N`, the free words as
the question, prompt or style). The plain-words router uses `fill()` too.
"""

from __future__ import annotations

import argparse
import difflib
import re
import shlex

from visionloop.images import IMAGE_SUFFIXES
from visionloop.chat.session import Session, mentioned_file, missing_image
from visionloop.tools import Tool, ToolCall
from visionloop.values import coerce_value

ALIASES = {"read": "read-text"}
#: the chat's own commands (`visionloop.chat.engine` handles them); every other `/word` names a tool
CHAT_COMMANDS = ("/help", "/image", "/images", "/open", "/run", "/plan", "/reset", "/save", "/quit", "/exit")
TEXT_INPUTS = ("question", "prompt", "style")  # where a command's free words go, if not required
WHICH_IMAGE = "Which image? Mention its path, or add one with /image PATH."


class Refusal(str):
    """What a router gives back for a user's mistake (an unknown `/command`): a `str`, as a question
    is, but the chat says it as an error (`error` under --json, stderr in plain mode)."""


class _ArgError(Exception):
    pass


class _ChatParser(argparse.ArgumentParser):
    def error(self, message):
        raise _ArgError(message)

    def exit(self, status=0, message=None):
        raise _ArgError((message or "").strip())


def tool_parser(tool: Tool) -> argparse.ArgumentParser:
    """The CLI's options for `tool`, every one of them optional: the chat fills images and
    the main text from the conversation and the free words."""
    from visionloop.toolkit.arguments import add_input_argument

    p = _ChatParser(prog=f"/{tool.name}", description=tool.description, add_help=False)
    p.add_argument("--help", "-h", action="store_true", dest="_help", help="show this help")
    for inp in tool.inputs:
        add_input_argument(p, inp, chat=True)
    # named apart from any tool input (a plugin's may be called `words`)
    p.add_argument("_words", nargs="*", metavar="WORDS", help="#N, image paths and the text (question or prompt)")
    return p


def split_words(text: str, paths: bool = False) -> list[str]:
    """Shell-like words (quotes group a path with spaces); an unbalanced quote is an apostrophe,
    or with `paths` (words that are file names) a quote the user did not close: `'a b.png`."""
    try:
        return shlex.split(text)
    except ValueError:  # "what's in it"
        pass
    if paths:
        for quote in ("'", '"'):
            try:
                return shlex.split(text + quote)
            except ValueError:
                continue
    return text.split()


def _values_may_be_negative(argv: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """`--box -10,0,20,20` as `--box=-10,0,20,20`: argparse takes a value that starts with `-`
    for an option, so the tool's own check never saw it (and said "expected one argument")."""
    out: list[str] = []
    for word in argv:
        if out and re.match(r"-\d", word) and out[-1].startswith("--") and "=" not in out[-1]:
            action = parser._option_string_actions.get(out[-1])
            if action is not None and action.nargs is None:  # an option that takes one value
                out[-1] = f"{out[-1]}={word}"
                continue
        out.append(word)
    return out


def unknown_command(word: str, tools: dict[str, Tool]) -> Refusal:
    """`/bogus`: an error, with the closest known command when one is close (`/imagse` -> `/images`)."""
    known = [c[1:] for c in CHAT_COMMANDS] + list(tools) + list(ALIASES)
    close = difflib.get_close_matches(word.lower(), known, n=1, cutoff=0.7)
    hint = f"did you mean /{close[0]}? " if close else ""
    return Refusal(f"unknown command /{word} ({hint}see /help)")


def route_command(message: str, session: Session, tools: dict[str, Tool]) -> ToolCall | str:
    argv = split_words(message[1:])
    if not argv:
        return "Type /help for the commands."
    name = ALIASES.get(argv[0], argv[0])
    tool = tools.get(name)
    if tool is None:
        return unknown_command(argv[0], tools)
    parser = tool_parser(tool)
    try:
        ns = parser.parse_intermixed_args(_values_may_be_negative(argv[1:], parser))
    except _ArgError as exc:  # `/draw --bogus`: the command line is wrong, as with an unknown command
        return Refusal(f"/{argv[0]}: {exc}")
    if ns._help:
        return parser.format_help().rstrip()
    from visionloop.toolkit.arguments import tool_values

    args = tool_values(ns, tool, stdin=False)  # the chat's stdin is the conversation, never an image
    images, words = [], []
    for word in ns._words:
        ref = re.fullmatch(r"#(-?\d+)", word)  # "#-1", "#0": said to be no image, not asked about
        if ref:
            path = session.image(ref.group(1)).path
            if path not in images:  # "/caption #1 #1" is one caption
                images.append(path)
        elif mentioned_file(word) is not None:
            path = session.attach(word).path
            if path not in images:
                images.append(path)
        elif word.lower().endswith(IMAGE_SUFFIXES):
            missing_image(word)  # raises: file not found, a folder, an unknown ~user
        else:
            words.append(word)
    return fill(tool, args, images, " ".join(words), session)


def fill(tool: Tool, args: dict, images: list[str], text: str, session: Session) -> ToolCall | str:
    """Complete `args`: the first image input gets `images` (or the current image, when the
    tool needs one), `#N` in explicit image options become paths, the free `text` goes to
    the tool's main text input."""
    args = dict(args)
    for inp in tool.inputs:
        if inp.type == "image" and inp.name in args:
            values = args[inp.name] if isinstance(args[inp.name], list) else [args[inp.name]]
            values = [_ref_path(v, session) for v in values]
            args[inp.name] = values if inp.multiple else values[0]
    image_input = next((i for i in tool.inputs if i.type == "image" and i.name not in args), None)
    if image_input is not None and (images or image_input.required):
        if not images:
            if session.current is None:
                return WHICH_IMAGE
            images = [session.current.path]
        args[image_input.name] = list(images) if image_input.multiple else images[0]
    text = text.strip()
    target = next((i for i in tool.inputs if i.type == "text" and i.required and i.name not in args), None)
    if target is None:
        target = next((i for i in tool.inputs if i.name in TEXT_INPUTS and i.name not in args), None)
    if target is None:  # a plugin's tool: its positional text input, as on the command line
        target = next((i for i in tool.inputs if i.type == "text" and i.positional and i.name not in args), None)
    if text:
        if target is None:
            return f"/{tool.name}: unexpected words {text!r} (see /{tool.name} --help)"
        args[target.name] = text
    elif target is not None and target.required:
        return f"/{tool.name} needs the {target.name}: e.g. /{tool.name} ... {target.name.upper()} (see /{tool.name} --help)"
    if tool.name == "edit" and args.get("box") and tool.input("box") is not None:
        try:  # remembered for "in the box" later; a bad box is for check_args to report
            session.last_box = coerce_value(tool.input("box"), args["box"])
        except ValueError:
            pass
    return ToolCall(tool.name, args)


def _ref_path(value: str, session: Session) -> str:
    ref = re.fullmatch(r"#(\d+)", str(value).strip())
    return session.image(ref.group(1)).path if ref else str(value)
