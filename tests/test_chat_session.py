"""`Session` alone: image numbering, "it", mentions, memory trimming, transcripts."""

from __future__ import annotations

import json
import shutil

import pytest

from visionloop.errors import ImageError, InputError
from visionloop.chat.session import Session
from visionloop.tools import ToolResult


@pytest.fixture
def pictures(tmp_path, example_image):
    paths = []
    for name in ("a.png", "b.png", "c.png"):
        shutil.copy(example_image, tmp_path / name)
        paths.append(str(tmp_path / name))
    return paths


def test_numbering_and_it(pictures):
    s = Session()
    assert s.current is None
    one = s.attach(pictures[0])
    two = s.attach(pictures[1])
    assert (one.number, two.number) == (1, 2)
    assert s.current is two  # "it" = the most recent
    assert s.attach(pictures[0]) is one  # attaching again keeps the number
    assert s.image(1).path == pictures[0]
    assert one.size == (256, 192) and one.source == "you"
    with pytest.raises(InputError, match=r"no image #3 \(images: #1 to #2\)"):
        s.image(3)
    assert [p.number for p in s.refs("compare #2 with #1 and #2")] == [2, 1]


def test_produced_images_join_the_list(pictures):
    s = Session()
    s.attach(pictures[0])
    produced = s.add_result(ToolResult(tool="draw", text="", images=[pictures[2]]))
    assert [p.number for p in produced] == [2] and produced[0].source == "draw"
    assert s.current.path == pictures[2]
    assert s.last_result.tool == "draw"
    s.add_result(ToolResult(tool="edit", error="edit: bad box"))
    assert s.turns[-1].role == "error" and len(s.images) == 2


def test_mentions_are_attached_and_replaced(pictures, tmp_path):
    s = Session()
    spaced = tmp_path / "my photo.png"
    shutil.copy(pictures[0], spaced)
    text = s.attach_mentions(f"compare {pictures[1]}, and '{spaced}' please; and/or yes")
    assert text == "compare #1, and #2 please; and/or yes"
    assert s.attach_mentions(f"again {pictures[1]}?") == "again #1?"
    with pytest.raises(ImageError, match=r"^nope\.jpeg: file not found$"):
        s.attach_mentions("what about nope.jpeg?")
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(ImageError, match="is a folder"):
        s.attach_mentions(f"look at {tmp_path / 'dir.png'}")
    assert len(s.images) == 2


def test_a_file_that_is_not_an_image_is_refused(tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("hello")
    with pytest.raises(ImageError, match="notes.png: not a supported image"):
        Session().attach(str(bad))


def test_history_keeps_the_newest_turns_that_fit(pictures):
    s = Session()
    key = [pictures[0]]
    s.remember([pictures[1]], "about b", "b")  # another image: never part of this history
    for i in range(5):
        s.remember(key, f"q{i}", f"a{i}")
    turns, dropped = s.history_for(key, lambda h: True)
    assert turns == [(f"q{i}", f"a{i}") for i in range(5)] and dropped == 0
    # a budget of three turns: the two oldest go
    turns, dropped = s.history_for(key, lambda h: len(h) <= 3)
    assert turns == [("q2", "a2"), ("q3", "a3"), ("q4", "a4")] and dropped == 2
    assert s.history_for([pictures[1]], lambda h: True) == ([], 0)  # not the latest run


def test_transcript_save_and_reset(pictures, tmp_path):
    s = Session()
    s.add_turn("user", "describe it")
    s.attach(pictures[0])
    s.add_result(ToolResult(tool="caption", text="a lighthouse"))
    text_file = s.save(str(tmp_path / "chat.txt"))
    assert text_file.read_text() == "> describe it\n[caption] a lighthouse\n"
    record = json.loads(s.save(str(tmp_path / "chat.json")).read_text())
    assert [t["role"] for t in record["turns"]] == ["user", "assistant"]
    assert record["images"][0]["number"] == 1
    with pytest.raises(InputError, match="does not exist"):
        s.save(str(tmp_path / "missing" / "x.txt"))
    s.add_turn("user", "and then")
    assert "and then" in s.save(str(tmp_path / "chat.txt")).read_text()  # its own file: replaced
    s.reset()
    assert s.images == [] and s.turns == [] and s.last_result is None


def test_save_never_overwrites_a_file_it_did_not_write(tmp_path):
    s = Session()
    s.add_turn("user", "hello")
    theirs = tmp_path / "notes.txt"
    theirs.write_text("someone's notes")
    with pytest.raises(InputError, match="already exists and this chat did not write it"):
        s.save(str(theirs))
    dangling = tmp_path / "link.txt"
    dangling.symlink_to(tmp_path / "elsewhere.txt")
    with pytest.raises(InputError, match="already exists"):
        s.save(str(dangling))
    assert theirs.read_text() == "someone's notes" and not (tmp_path / "elsewhere.txt").exists()
