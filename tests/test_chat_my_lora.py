""""use my NAME style" in the chat: the user's trained LoRA joins draw, edit and restyle, its
trigger word first; a name that is not a trained LoRA is one line back."""

from __future__ import annotations

import json

import pytest

from visionloop.chat.router import route
from visionloop.tools import ToolCall
from visionloop.values import check_args


@pytest.fixture
def rex():
    """A trained LoRA named rex (trigger word `rexdog`) in the LoRA folder of this test."""
    from visionloop.models.training.store import DIFFUSERS_FILE, TRAINING_FILE, loras_dir

    folder = loras_dir() / "rex"
    folder.mkdir(parents=True)
    (folder / DIFFUSERS_FILE).write_bytes(b"weights")
    (folder / TRAINING_FILE).write_text(json.dumps({"settings": {"trigger": "rexdog"}, "status": "finished"}))
    return folder


@pytest.mark.parametrize("phrase, tool, key, text", [
    ("draw a dog on a beach in my rex style", "draw", "prompt", "rexdog, a dog on a beach"),
    ("paint a castle, use my rex style", "draw", "prompt", "rexdog, a castle"),
    ("draw rexdog in the snow with my rex lora", "draw", "prompt", "rexdog in the snow"),
    ("make it look like a watercolour using my Rex look", "restyle", "style", "rexdog, a watercolour"),
    ("put a hat in the top left in my rex style", "edit", "prompt", "rexdog, a hat"),
])
def test_my_style_adds_the_lora_and_its_trigger(phrase, tool, key, text, two_images, registry, rex):
    call = route(phrase, two_images, registry.tools)
    assert isinstance(call, ToolCall) and call.tool == tool, call
    assert call.args["lora"] == ["rex"] and call.args[key] == text
    check_args(registry.tools[tool], call.args)  # the arguments the tool takes


def test_an_unknown_lora_name_is_said_not_drawn_plain(two_images, registry, rex):
    answer = route("draw a cat in my fluffy style", two_images, registry.tools)
    assert answer == "There is no trained LoRA named 'fluffy' (yours: rex)."


def test_messages_without_the_phrase_are_untouched(two_images, registry, rex):
    call = route("draw a dog in the style of Monet", two_images, registry.tools)
    assert "lora" not in call.args
    assert "lora" not in route("draw my dog in the snow", two_images, registry.tools).args
