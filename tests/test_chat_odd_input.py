"""A second round of odd input, as a new user types it: escapes and control characters, symlink
loops, `#-1`, negative option values, several paths at once, a quote left open, other scripts'
question marks. (The first round: test_chat_input.py.)"""

from __future__ import annotations

import json
import shutil

from visionloop.chat.router import route
from visionloop.chat.session import Session
from visionloop.tools import ToolCall
from chat_fixtures import Talk


def test_a_symlink_loop_is_one_line_not_an_internal_error(talk, tmp_path):
    (tmp_path / "a.png").symlink_to(tmp_path / "b.png")
    (tmp_path / "b.png").symlink_to(tmp_path / "a.png")
    out, err = talk.say(f"/image {tmp_path / 'a.png'}")
    assert out == "" and err == f"error: {tmp_path / 'a.png'}: is a symlink loop, not an image file\n"


def test_control_characters_are_shown_never_sent_to_the_terminal(talk):
    _, err = talk.say("/foo\x1b[2J")  # an unknown command is an error
    assert err == "error: unknown command /foo\\x1b[2J (see /help)\n"
    _, err = talk.say("/image \x1b[31mx.png")
    assert err == "error: \\x1b[31mx.png: file not found\n"
    out, _ = talk.say("/parrot \x1b]0;pwned\x07 and\x08back\x9b")  # a tool's answer too
    assert out == "\\x1b]0;pwned\\x07 and\\x08back\\x9b\n"


def test_streamed_tokens_are_shown_as_text(chat_loop):
    t = Talk(chat_loop, stream=True)
    t.chat.out.token("a\x1b[2Jb")
    assert t.out.getvalue() == "a\\x1b[2Jb"


def test_json_lines_escape_every_control_character_and_keep_the_text(chat_loop):
    t = Talk(chat_loop, json_mode=True)
    out, _ = t.say("/parrot a\x9bb\x7fc")
    assert "\x9b" not in out and "\x7f" not in out and "\\u009b" in out
    assert json.loads(out)["text"] == "a\x9bb\x7fc"


def test_a_negative_or_zero_image_number_is_said_to_be_none(talk, pics):
    talk.say(f"/image {pics[0]}")
    for line in ("/see #-1 what is it?", "/caption #0"):
        out, err = talk.say(line)
        assert out.startswith(f"there is no image #{line.split('#')[1].split()[0]} (images: #1 to #1)"), line
    assert talk.chat.session.last_result is None  # nothing was asked about "#-1"


def test_image_with_several_paths_keeps_every_good_one(talk, pics, tmp_path):
    out, err = talk.say(f"/image {pics[0]} {tmp_path / 'nope.png'} {pics[1]}")
    assert out == f"#1 {pics[0]} (256x192)\n#2 {pics[1]} (256x192)\n"
    assert err == f"error: {tmp_path / 'nope.png'}: file not found\n"


def test_a_quote_left_open_before_a_file_name(talk, registry, tmp_path, example_image):
    spaced = tmp_path / "a b.png"
    shutil.copy(example_image, spaced)
    out, err = talk.say(f"/image '{spaced}")
    assert err == "" and out == f"#1 {spaced} (256x192)\n"
    call = route(f'what is in "{spaced}?', Session(), registry.tools)
    assert call == ToolCall("see", {"question": "what is in this image?", "image": [str(spaced)]})


def test_arabic_and_full_width_question_marks_ask(registry, two_images):
    for line in ("ما هذا؟", "这是什么？"):
        call = route(line, two_images, registry.tools)
        assert isinstance(call, ToolCall) and call.tool == "see", (line, call)
