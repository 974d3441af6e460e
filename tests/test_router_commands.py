"""Explicit `/tool args` commands: the CLI's options, and the mistakes a new user makes with
them (plain words: test_router.py)."""

from __future__ import annotations

from visionloop.chat.router import route
from visionloop.tools import ToolCall


def test_slash_commands_take_the_cli_options(two_images, registry):
    tools = registry.tools
    call = route("/see -q 'what is it?' #1", two_images, tools)
    # -q may be repeated (one answer per question): the option gives a list
    assert call == ToolCall("see", {"question": ["what is it?"], "image": [two_images.image(1).path]})
    call = route("/see --temperature 0.5 what is it?", two_images, tools)
    assert call.args == {"temperature": "0.5", "question": "what is it?", "image": [two_images.current.path]}
    assert route("/caption --detail long #1", two_images, tools).args["detail"] == "long"
    assert route("/read", two_images, tools) == ToolCall("read-text", {"image": [two_images.current.path]})
    call = route("/edit --box 10,10,90,90 a red hat", two_images, tools)
    assert call == ToolCall("edit", {"box": "10,10,90,90", "image": two_images.current.path,
                                     "prompt": "a red hat"})
    assert route("/draw --seed 3 --steps 2 a cat", two_images, tools) == \
        ToolCall("draw", {"seed": "3", "steps": "2", "prompt": "a cat"})
    assert route("/restyle --strength 0.3 #1 ink wash", two_images, tools) == \
        ToolCall("restyle", {"strength": "0.3", "image": two_images.image(1).path, "style": "ink wash"})


def test_slash_command_mistakes_are_one_line(two_images, registry):
    tools = registry.tools
    assert route("/bogus x", two_images, tools) == "unknown command /bogus (see /help)"
    assert route("/captoin x", two_images, tools) == "unknown command /captoin (did you mean /caption? see /help)"
    assert "unrecognized arguments: --bogus" in route("/see --bogus 1 hi", two_images, tools)
    assert "missing.png: file not found" in route("/see missing.png what?", two_images, tools)
    assert "needs the question" in route("/see #1", two_images, tools)
    assert route("/see --help", two_images, tools).startswith("usage: /see")
    assert "--question" in route("/see --help", two_images, tools)


def test_an_image_named_twice_is_one_image(registry, two_images):
    call = route("/caption #1 #1", two_images, registry.tools)
    assert call == ToolCall("caption", {"image": [two_images.image(1).path]})


def test_a_negative_option_value_reaches_the_tools_own_check(registry, two_images):
    for line, value in (("/edit --box -10,-10,20,20 a hat", "-10,-10,20,20"), ("/draw --size -8x64 a cat", "-8x64")):
        call = route(line, two_images, registry.tools)
        assert call == route(line.replace(f" {value}", f"={value}"), two_images, registry.tools), line
        assert isinstance(call, ToolCall), (line, call)
