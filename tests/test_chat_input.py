"""What a new user may type by mistake: every line gets a one-line answer, never a traceback,
and the chat goes on reading. (Piped and real-terminal runs: test_chat_cli.py, test_chat_terminal.py.)"""

from __future__ import annotations

import io
import os
import shutil

from visionloop.chat.engine import MAX_LINE
from visionloop.chat.repl import run_lines
from visionloop.chat.router import route
from visionloop.chat.session import Session
from visionloop.tools import ToolCall

LONG_WORD = "x" * 300  # longer than any file name may be (255 bytes)


def one_line(err: str) -> bool:
    return err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err


# --- `~`: a home folder only where it names one ----------------------------------------------

def test_a_tilde_that_names_no_home_is_text(registry):
    session = Session()
    assert route("draw ~5 cats", session, registry.tools) == ToolCall("draw", {"prompt": "~5 cats"})
    assert route("draw ~nosuchuser's garden", session, registry.tools) == \
        ToolCall("draw", {"prompt": "~nosuchuser's garden"})
    assert session.images == []


def test_a_tilde_that_names_a_home_is_that_folder(registry, tmp_path, example_image, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    shutil.copy(example_image, tmp_path / "pic.png")
    call = route("describe ~/pic.png", Session(), registry.tools)
    assert call == ToolCall("caption", {"detail": "short", "image": [str(tmp_path / "pic.png")]})


def test_a_path_that_must_be_one_says_why_not(talk):
    for line in ("/image ~nosuchuser/x.png", "/save ~nosuchuser/talk.txt", "what is in ~nosuchuser/x.png?"):
        _, err = talk.say(line)
        assert one_line(err) and "'~nosuchuser' names no home folder" in err, line


# --- words that are not paths ------------------------------------------------------------------

def test_a_word_is_a_path_only_if_it_looks_like_one(registry, tmp_path):
    (tmp_path / "cat").write_text("not an image")  # the tests run in tmp_path
    assert route("draw a cat", Session(), registry.tools) == ToolCall("draw", {"prompt": "a cat"})
    session = Session()
    assert route("/draw cat", session, registry.tools) == ToolCall("draw", {"prompt": "cat"})
    reply = route("describe ./cat", session, registry.tools)  # this one looks like a path: it is one
    assert isinstance(reply, str) and reply.startswith("cat: not a supported image")


def test_a_word_too_long_for_a_file_name_is_a_word(talk, registry, pics):
    session = Session()
    session.attach(pics[0])
    call = route(f"what is {LONG_WORD}?", session, registry.tools)
    assert call == ToolCall("see", {"question": f"what is {LONG_WORD}?", "image": [pics[0]]})
    assert route(f"/draw {LONG_WORD}", Session(), registry.tools) == ToolCall("draw", {"prompt": LONG_WORD})
    for line in (f"/image {LONG_WORD}.png", f"/save {LONG_WORD}.txt", f"describe {LONG_WORD}.png"):
        _, err = talk.say(line)
        assert one_line(err) and len(err) < 600, (line, err)
    _, err = talk.say(f"/image {LONG_WORD}.png")
    assert "a name in this path is 304 bytes long; file names are at most 255" in err


def test_a_nul_byte_or_a_huge_image_number_is_one_line(talk, pics):
    _, err = talk.say("/image bad\x00name.png")
    assert err == "error: 'bad\\x00name.png': a file name cannot contain a NUL byte\n"
    talk.say(f"/image {pics[0]}")
    for line, expected in (("describe #" + "9" * 5000, "there is no image #9999"),
                           ("/see #" + "9" * 5000 + " what?", "there is no image #9999"),
                           ("/open #" + "9" * 5000, "there is no image #9999"),
                           ("/open #²", "usage: /open")):
        out, err = talk.say(line)
        text = out + err
        assert text.count("\n") == 1 and "Traceback" not in text and len(text) < 600, line
        assert expected in text, (line[:20], text)


# --- long lines ----------------------------------------------------------------------------------

def test_a_line_over_the_limit_is_refused_without_an_echo(talk):
    out, err = talk.say("y" * 100_000)
    assert out == "" and err == (f"error: that line is 100,000 characters long; the chat reads at most "
                                 f"{MAX_LINE:,} per line, so nothing was done\n")
    assert all(len(turn.text) < 200 for turn in talk.chat.session.turns)  # nor kept in the transcript
    out, err = talk.say("/images")
    assert out.startswith("no images yet") and err == ""


def test_a_long_word_in_a_message_is_shortened_when_echoed(talk):
    out, err = talk.say("/draw --seed " + "9" * 20_000 + " a cat")  # a wrong option value: an error
    assert out == "" and "expected a whole number, got '99999" in err and "(20,002 characters)" in err and len(err) < 600


def test_piped_lines_over_the_limit_are_skipped_and_counted(talk):
    stream = io.StringIO("a" * (MAX_LINE + 1) + "\n" + "b" * 1_000_000 + "\n" + "c" * MAX_LINE + "\n/images\n")
    assert run_lines(talk.chat, stream) == 0
    errors = talk.err.getvalue().splitlines()
    assert [e.split(";")[0] for e in errors[:2]] == [f"error: that line is {MAX_LINE + 1:,} characters long",
                                                       "error: that line is 1,000,000 characters long"]
    assert talk.out.getvalue().splitlines()[-1].startswith("no images yet")  # the last line still ran
    assert [t.text for t in talk.chat.session.turns if t.role == "user"][-1] == "/images"


# --- commands -------------------------------------------------------------------------------------

def test_save_refuses_to_overwrite_a_picture_and_reports_a_failed_write(talk, tmp_path, monkeypatch):
    picture = tmp_path / "photo.png"
    picture.write_bytes(b"precious")
    _, err = talk.say(f"/save {picture}")
    assert err == f"error: {picture}: a transcript is text; give a .txt or .json name\n"
    assert picture.read_bytes() == b"precious"
    import visionloop.images

    def full_disk(path, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(visionloop.images, "atomic_write_bytes", full_disk)
    _, err = talk.say(f"/save {tmp_path / 'talk.txt'}")
    assert err == f"error: {tmp_path / 'talk.txt'}: cannot write the transcript: No space left on device\n"


def test_empty_or_split_names_get_the_usage(talk, tmp_path):
    for line, usage in (('/image ""', "usage: /image PATH"), ("/save ''", "usage: /save FILE"),
                        ("/save my notes.txt", "usage: /save FILE (quote a name with spaces)")):
        _, err = talk.say(line)
        assert err == f"error: {usage}\n", line
    assert not (tmp_path / "my").exists()
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)  # reading it would wait for a writer
    _, err = talk.say(f"describe {fifo}")
    assert err == f"error: {fifo}: is not a regular file\n"


def test_a_bug_in_a_command_is_one_line_and_the_chat_goes_on(talk, monkeypatch):
    def broken(path):
        raise KeyError("oops")

    monkeypatch.setattr(talk.chat.session, "save", broken)
    out, err = talk.say("/save somewhere.txt")
    assert out == "" and err == "error: internal error (KeyError: 'oops'); the chat goes on (-v shows where)\n"
    out, err = talk.say("/images")
    assert out.startswith("no images yet") and err == ""
