"""The chat's words for regions and style pictures, on phrasings the router table
(tests/test_router.py) does not hold: a thing named in an edit becomes `where`, a picture named
as the style becomes `style_image`, and the style words and places that meant something before
still do. Then two of them run in a chat on the tiny models."""

from __future__ import annotations

import pytest
from visionloop.chat.router import route
from visionloop.tools import ToolCall
from visionloop.values import check_args

# phrase -> tool and the arguments it must have ("#1"/"#2": that picture's path; two pictures, #2 the latest)
HELD_OUT = [
    ("swap the sky for a starry night", "edit", {"where": ["the sky"], "prompt": "a starry night", "image": "#2"}),
    ("please replace the grass in #1 with snow", "edit", {"where": ["the grass"], "prompt": "snow", "image": "#1"}),
    ("erase the power lines", "edit", {"where": ["the power lines"], "prompt": "background"}),
    ("get rid of the dog and the cat", "edit", {"where": ["the dog", "the cat"], "prompt": "background"}),
    ("delete the man on the right", "edit", {"where": ["the man"], "box": "128,0,256,192"}),
    ("change the door to green", "edit", {"where": ["the door"], "prompt": "green door"}),
    ("make the boat bright yellow", "edit", {"where": ["the boat"], "prompt": "bright yellow boat"}),
    ("can you make the sea a bit darker", "edit", {"where": ["the sea"], "prompt": "a bit darker sea"}),
    ("mask the lighthouse", "segment", {"where": ["the lighthouse"], "image": "#2"}),
    ("select the clouds in #1", "segment", {"where": ["the clouds"], "image": "#1"}),
    ("give me a mask of the water", "segment", {"where": ["the water"]}),
    ("redraw #1 in the style of #2", "restyle", {"image": "#1", "style_image": "#2"}),
    ("make #2 look like #1", "restyle", {"image": "#2", "style_image": "#1"}),
    ("let's make it look like the other picture", "restyle", {"image": "#1", "style_image": "#2"}),
    ("do it in the style of that painting please", "restyle", {"image": "#1", "style_image": "#2"}),
    ("restyle #1 like #2", "restyle", {"image": "#1", "style_image": "#2"}),
    # style words are still words, places still boxes, new things still need a place
    ("make it look like a pastel drawing", "restyle", {"style": "a pastel drawing", "image": "#2"}),
    ("in the style of Klimt", "restyle", {"style": "in the style of Klimt"}),
    ("put a kite in the top right", "edit", {"prompt": "a kite", "box": "128,0,256,96"}),
]
QUESTIONS = [
    ("replace it with a castle", "Where in the picture"),
    ("make the top right blue", "not sure"),
    ("make it brighter", "not sure"),
    ("mask it", "not sure"),
]


def _expand(value, session):
    if isinstance(value, list):
        return [_expand(v, session) for v in value]
    if isinstance(value, str) and value.startswith("#") and value[1:].isdigit():
        return session.image(int(value[1:])).path
    return value


@pytest.mark.parametrize("phrase, tool, expected", HELD_OUT, ids=[p for p, _, _ in HELD_OUT])
def test_held_out_phrasings_reach_the_right_tool(phrase, tool, expected, two_images, registry):
    call = route(phrase, two_images, registry.tools)
    assert isinstance(call, ToolCall), call
    assert call.tool == tool, call
    for key, value in expected.items():
        assert call.args.get(key) == _expand(value, two_images), (key, call.args)
    if tool != "edit" or "box" not in expected:
        assert "box" not in call.args
    if "style_image" not in expected:
        assert "style_image" not in call.args
    check_args(registry.tools[tool], call.args)  # valid as declared


@pytest.mark.parametrize("phrase, answer", QUESTIONS)
def test_what_names_no_thing_still_asks(phrase, answer, two_images, registry):
    reply = route(phrase, two_images, registry.tools)
    assert isinstance(reply, str) and answer in reply


def test_a_style_picture_needs_another_picture(registry):
    from visionloop.chat.session import Session

    session = Session(check_image=lambda path: (64, 64))
    session.attach(__file__.replace(".py", ".png"))  # never loaded: the size comes from check_image
    reply = route("make it look like that painting", session, registry.tools)
    assert isinstance(reply, str) and "Which picture should take the style of #1" in reply


@pytest.mark.usefixtures("one_torch_thread")
def test_in_the_chat_a_sky_is_masked_then_replaced(talk, pics):
    talk.say(f"/image {pics[0]}")
    _, err = talk.say("segment the sky")
    result = talk.chat.session.last_result
    assert err == "" and result.tool == "segment" and result.data["where"] == ["the sky"]
    assert talk.chat.session.current.source == "segment"
    _, err = talk.say("replace the sky in #1 with a sunset")  # the photo, not the mask (#2)
    result = talk.chat.session.last_result
    assert err == "" and result.tool == "edit", err
    assert result.data["where"] == ["the sky"] and result.data["image"] == pics[0] and result.data["covered"] > 0
