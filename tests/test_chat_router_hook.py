"""The `route_message` hook: plugins' routers run before the built-in one, and a plugin adds its
own routing rules (`visionloop.chat.rules.Rule`) through it."""

from __future__ import annotations

from visionloop.chat.router import ensure_registered, route
from visionloop.chat.rules import Rule, route_rules
from visionloop.chat.session import Session
from visionloop.hookspecs import hookimpl
from visionloop.tools import Input, Tool, ToolCall


class _ShoutRouter:
    """A plugin router: 'magic' means caption; anything else is left to the next router."""

    @hookimpl
    def route_message(self, message, session, tools):
        return ToolCall("caption", {"image": [session.current.path]}) if "magic" in message else None


def test_plugin_routers_run_before_the_built_in_one(two_images):
    from visionloop.plugins import load_registry

    registry = load_registry(extra=[_ShoutRouter()])
    ensure_registered(registry.pm)
    ensure_registered(registry.pm)  # idempotent
    hook = registry.pm.hook.route_message
    # "draw magic" would be a drawing for the built-in router; the plugin's answer wins.
    assert hook(message="draw magic", session=two_images, tools=registry.tools).tool == "caption"
    assert hook(message="describe it", session=two_images, tools=registry.tools).tool == "caption"
    assert hook(message="read the text", session=two_images, tools=registry.tools).tool == "read-text"
    assert hook.get_hookimpls()[0].plugin_name == "visionloop-router"  # called last


def test_a_fake_tool_set_routes_by_input_names():
    """Third-party tools with the same names and other inputs still get valid calls."""
    run = lambda ctx, **kw: None  # noqa: E731
    tools = {"draw": Tool("draw", "d", [Input("prompt", "text", required=True), Input("size", "size")], run)}
    assert route("draw a tiny house", Session(), tools) == ToolCall("draw", {"prompt": "a tiny house"})


class _UpscalePlugin:
    """A third-party tool with its own phrasing, routed by a rule added through the hook."""

    RULES = [Rule("upscale", "upscale", r"^(?:upscale|enlarge)\b(?:.*?\b(?P<factor>[2-8])\s*x\b)?",
                  lambda req, found: {"factor": found.group("factor") or "2"})]

    @hookimpl
    def register_tools(self, register):
        register(Tool("upscale", "make it bigger", [Input("image", "image", required=True),
                                                    Input("factor", "int", 2, min=2, max=8)], lambda ctx, **kw: None))

    @hookimpl
    def route_message(self, message, session, tools):
        return route_rules(self.RULES, message, session, tools)


def test_a_plugin_adds_a_rule_through_the_hook(two_images):
    from visionloop.plugins import load_registry

    registry = load_registry(extra=[_UpscalePlugin()])
    ensure_registered(registry.pm)
    tools = registry.tools

    def hook(message):
        return registry.pm.hook.route_message(message=message, session=two_images, tools=tools)

    # the message is read as for the built-in rules: the lead-in goes, "it" is the current image, #N is that image
    assert hook("please upscale it 4x") == ToolCall("upscale", {"factor": "4", "image": two_images.current.path})
    assert hook("enlarge #1") == ToolCall("upscale", {"factor": "2", "image": two_images.image(1).path})
    assert hook("upscale #9") == "there is no image #9 (images: #1 to #2)"
    # everything else is left to the built-in router
    assert hook("draw a cat") == ToolCall("draw", {"prompt": "a cat"})
    assert route_rules(_UpscalePlugin.RULES, "/upscale #1", two_images, tools) is None
    assert route_rules(_UpscalePlugin.RULES, "describe it", two_images, tools) is None
