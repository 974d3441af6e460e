"""Every hook a visionloop plugin can implement.

A plugin is a module (or object) registered under the ``visionloop`` entry-point group, or a
``.py`` file in one of the folders listed in ``plugins.paths`` in the config. It implements
any of these hooks with ``@visionloop.hookimpl``. The built-in tools in ``plugins/`` are registered
exactly this way.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("visionloop")
hookimpl = pluggy.HookimplMarker("visionloop")


@hookspec
def register_tools(register):
    """Register the tools this plugin provides.

    Call ``register(tool)`` once per :class:`visionloop.tools.Tool`. Two tools with one name are an
    error that names both plugins; nothing is silently overridden.

    :return: ignored.
    """


@hookspec(firstresult=True)
def route_message(message, session, tools):
    """Turn one chat message, in the user's own words, into a tool call.

    :param str message: what the user typed (never text that came out of an image).
    :param session: the :class:`visionloop.chat.session.Session` (attached images, last result).
    :param dict tools: the registered tools by name.
    :return: a :class:`visionloop.tools.ToolCall`, a ``str`` question to ask the user back when the
        message is ambiguous, or ``None`` to let the next router try. The first non-``None``
        result wins; the built-in router runs last.

    To add phrasings for a tool without writing a router, return
    ``visionloop.chat.rules.route_rules(RULES, message, session, tools)`` with a list of
    :class:`visionloop.chat.rules.Rule` (a pattern, the tool, and a function giving its arguments):
    the message is read as the built-in rules read it, and ``None`` comes back when none matches.
    """


@hookspec(firstresult=True)
def plan_message(message, session, tools):
    """Turn one chat message that asks for several things into a plan: a small workflow.

    Called before ``route_message`` for every plain-words message.

    :param str message: what the user typed (never text that came out of an image).
    :param session: the :class:`visionloop.chat.session.Session` (attached images, last result).
    :param dict tools: the registered tools by name.
    :return: a :class:`visionloop.chat.planner.Plan` (steps whose arguments may hold
        ``${inputs.image}`` and ``${steps.ID.text|image}`` references; the chat validates it as a
        workflow, shows it and runs it once the user agrees), a ``str`` question to ask the user
        back, or ``None`` when the message is a single request (it then goes to ``route_message``)
        or to let the next planner try. The first non-``None`` result wins; the built-in planner
        (``visionloop.chat.planner``: "then", ";", numbered lists, "and read me the text") runs last.

    A plan must be made from ``message`` alone: text a step will return flows only into the
    argument slots the plan gives it, never into the choice of steps.
    """


@hookspec
def startup(config):
    """Check this plugin's own configuration before any tool runs.

    :param config: the validated :class:`visionloop.config.Config`.
    :return: ignored. Raise :class:`visionloop.errors.ConfigError` to stop with a clear message.
    """
