"""The built-in router: one chat message, in the user's own words, becomes a tool call.

Explicit `/tool args` come first (`visionloop.chat.slash_commands`: the same options as the CLI, built
by `visionloop.toolkit.arguments.add_input_argument` from the tool's inputs). Plain words then go
through the intent rules of `visionloop.chat.intents.RULES` (a table of `visionloop.chat.rules.Rule`:
pattern -> tool and argument extractor), tried in order; the first that answers wins.

Anything else gets a short question back rather than a guess. This module is registered as a
`route_message` hookimpl marked `trylast`, so a plugin's router (or a plugin's own rules, through
`visionloop.chat.rules.route_rules`) always gets the first word. The chat only ever passes what the
user typed: text that came out of an image never routes.
"""

from __future__ import annotations

from visionloop.chat.intents import RULES
from visionloop.chat.my_lora import apply_my_lora
from visionloop.chat.phrases import HELP, HELP_HINT, REGIONS, strip_lead
from visionloop.chat.rules import Request, first_match
from visionloop.chat.session import Session
from visionloop.chat.slash_commands import Refusal, route_command
from visionloop.errors import VisionloopError
from visionloop.hookspecs import hookimpl
from visionloop.tools import Tool, ToolCall

__all__ = ["REGIONS", "RULES", "Refusal", "ensure_registered", "route", "route_message", "route_words", "wants_help"]


# --- the hook --------------------------------------------------------------------------------

@hookimpl(trylast=True)
def route_message(message, session, tools):
    return route(message, session, tools)


def ensure_registered(pm) -> None:
    """Register the built-in router (once); `trylast` keeps plugins' routers ahead of it."""
    import visionloop.chat.router as me

    if not pm.is_registered(me):
        pm.register(me, name="visionloop-router")


def route(message: str, session: Session, tools: dict[str, Tool]) -> ToolCall | str | None:
    """A `ToolCall`, or a short question/answer (str) when the message cannot be run as is."""
    message = message.strip()
    if not message:
        return None
    try:
        if message.startswith("/"):
            return route_command(message, session, tools)
        return route_words(message, session, tools)
    except VisionloopError as exc:  # a bad path or a missing #N: one line back, the chat goes on
        return str(exc)


def wants_help(message: str) -> bool:
    """'help', 'what can you do?': the chat answers these with its /help text."""
    return bool(HELP.match(strip_lead(message.strip())))


def route_words(message: str, session: Session, tools: dict[str, Tool]) -> ToolCall | str:
    """Plain words through the built-in rules; a short question back when none fits."""
    if wants_help(message):
        return HELP_HINT
    found = first_match(RULES, Request.read(message, session, tools))
    if found is not None:
        return apply_my_lora(found[1], message)  # "... in my NAME style": the user's own LoRA
    hint = f" about #{session.current.number}" if session.current else ""
    return (f"I'm not sure what to do with that. Ask a question{hint}, or say 'describe it', 'read the text', "
            f"'draw ...', 'make it look like ...' (/help lists the commands).")
