"""Routing rules as data: a `Rule` says when plain words mean a tool, and how the words become
the tool's arguments.

The built-in rules are the table `visionloop.chat.intents.RULES`, tried in order; the first rule that
answers wins. A plugin adds rules of its own through the `route_message` hook and the same
machinery (`route_rules`), so its rules read the message exactly as the built-in ones do (the
polite lead-in stripped, mentioned paths as `#N`, "it" meaning the current image) and its calls
are completed from the conversation in the same way:

    from visionloop.chat.rules import Rule, route_rules

    RULES = [Rule("upscale", "upscale", r"^(?:upscale|enlarge)\\b", lambda req, found: {"factor": 2})]

    @hookimpl
    def route_message(message, session, tools):
        return route_rules(RULES, message, session, tools)  # None when no rule matches

Plugins' routers run before the built-in one, so a plugin's rule wins over a built-in phrasing.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Callable, Union

from visionloop.chat.phrases import EDIT, MEANT, REGION, strip_lead
from visionloop.chat.session import Picture, Session
from visionloop.chat.slash_commands import fill
from visionloop.errors import VisionloopError
from visionloop.tools import Tool, ToolCall

log = logging.getLogger(__name__)

# What a rule's `args` gives back: the tool's arguments, a question to ask the user, or None
# to let the next rule try.
Answer = Union[dict, str, None]


@dataclass(frozen=True)
class Request:
    """One plain-words message, read once for every rule."""

    message: str  # as the user typed it
    text: str  # mentioned image paths replaced by their #N
    core: str  # `text` without the polite lead-in; a leading place moved after an edit's order
    refs: list[Picture]  # the images named by #N, in order
    meant: bool  # an existing image is meant: #N, "it", "this picture", a place in a picture we have
    session: Session
    tools: dict[str, Tool]

    @classmethod
    def read(cls, message: str, session: Session, tools: dict[str, Tool]) -> "Request":
        """Raises `VisionloopError` for a mentioned path that is not an image, or an unknown #N."""
        text = session.attach_mentions(message)
        refs = session.refs(text)
        core = strip_lead(text)
        lead = REGION.match(core)  # "in the top left, add a bird": the place goes after the order
        if lead and EDIT.match(core[lead.end():].lstrip(" ,")):
            core = f"{core[lead.end():].lstrip(' ,')} {lead.group(0)}"
        meant = bool(refs) or bool(MEANT.search(core)) or bool(session.images and REGION.search(core))
        return cls(message, text, core, refs, meant, session, tools)

    @property
    def images(self) -> list[str]:
        return [p.path for p in self.refs]

    def call(self, name: str, args: dict) -> ToolCall | str:
        """A call of tool `name`: only the arguments it declares, its image from #N or the
        current image (`fill`); a tool that is not registered is said plainly."""
        tool = self.tools.get(name)
        if tool is None:
            return f"the {name} tool is not available here (tools: {', '.join(sorted(self.tools)) or 'none'})"
        args = {k: v for k, v in args.items() if tool.input(k) is not None}
        return fill(tool, args, self.images, "", self.session)


def _no_args(req: Request, found: Any) -> dict:
    return {}


@dataclass(frozen=True)
class Rule:
    """When `when` matches a message, the message is a call of `tool` with `args(req, found)`.

    - `name`: what the rule is called (logs, tests, and a plugin's own table);
    - `tool`: the tool it routes to; None for a rule that only asks back (its `args` gives a str);
    - `when`: a regular expression (a str is compiled case-insensitively) searched in
      `req.core`, or a function of the `Request`; its truthy result is passed on as `found`;
    - `args(req, found)`: the tool's arguments (a dict; the image is filled in from `#N` or the
      current image), a question for the user (a str), or None to let the next rule try.
    """

    name: str
    tool: str | None
    when: str | re.Pattern | Callable[[Request], Any]
    args: Callable[[Request, Any], Answer] = _no_args

    def __post_init__(self):
        if isinstance(self.when, str):
            object.__setattr__(self, "when", re.compile(self.when, re.I | re.S))

    def answer(self, req: Request) -> ToolCall | str | None:
        found = self.when.search(req.core) if isinstance(self.when, re.Pattern) else self.when(req)
        if not found:
            return None
        got = self.args(req, found)
        if isinstance(got, dict):
            if self.tool is None:
                raise TypeError(f"rule {self.name!r} names no tool but gave arguments")
            return req.call(self.tool, got)
        return got


def first_match(rules: list[Rule], req: Request) -> tuple[Rule, ToolCall | str] | None:
    """The first rule that answers `req`, with its answer."""
    for rule in rules:
        answer = rule.answer(req)
        if answer is not None:
            log.debug("rule %s answered", rule.name)
            return rule, answer
    return None


def route_rules(rules: list[Rule], message: str, session: Session, tools: dict[str, Tool]) -> ToolCall | str | None:
    """`message` through `rules`: a `ToolCall`, a question, or None when no rule matches (or the
    message is an explicit `/command`). For a plugin's `route_message` hookimpl."""
    message = message.strip()
    if not message or message.startswith("/"):
        return None
    try:
        found = first_match(rules, Request.read(message, session, tools))
    except VisionloopError as exc:  # a bad path or a missing #N: one line back, the chat goes on
        return str(exc)
    return found[1] if found else None
