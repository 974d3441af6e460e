"""The prompt_toolkit front end, driven through a pipe input: keys in, answers out."""

from __future__ import annotations

import _thread
import shutil
import threading
import time
from types import SimpleNamespace

from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.keys import Keys
from prompt_toolkit.output import DummyOutput

from visionloop.chat.repl import ChatCompleter, history_path, key_bindings, run_terminal
from chat_fixtures import Talk

ENTER, CTRL_C, CTRL_D, ALT_ENTER, UP = "\r", "\x03", "\x04", "\x1b\r", "\x1b[A"


def type_keys(talk, keys: str, history) -> str:
    """Run the terminal chat on `keys`; returns what it printed."""
    with create_pipe_input() as inp:
        inp.send_text(keys)
        assert run_terminal(talk.chat, history_file=history, input=inp, output=DummyOutput()) == 0
    return talk.out.getvalue() + talk.err.getvalue()


def user_lines(talk) -> list[str]:
    return [t.text for t in talk.chat.session.turns if t.role == "user"]


def test_commands_then_ctrl_d(talk, tmp_path, example_image):
    out = type_keys(talk, f"/image {example_image}{ENTER}/images{ENTER}{CTRL_D}", tmp_path / "h")
    assert out.startswith("visionloop chat: type a message or /help")
    assert f"#1 {example_image} (256x192, you)" in out
    assert user_lines(talk) == [f"/image {example_image}", "/images"]


def test_quit_leaves_before_later_lines(talk, tmp_path):
    type_keys(talk, f"/help{ENTER}/quit{ENTER}/images{ENTER}", tmp_path / "h")
    assert user_lines(talk) == ["/help"]


def test_ctrl_c_at_the_prompt_drops_the_line(talk, tmp_path):
    type_keys(talk, f"draw something big{CTRL_C}/images{ENTER}{CTRL_D}", tmp_path / "h")
    assert user_lines(talk) == ["/images"]


def test_multi_line_input(talk, tmp_path, example_image):
    keys = f"/image {example_image}{ENTER}describe\\{ENTER}this{ALT_ENTER}picture{ENTER}{CTRL_D}"
    type_keys(talk, keys, tmp_path / "h")
    assert user_lines(talk)[-1] == "describe\nthis\npicture"
    assert talk.chat.session.last_result.tool == "caption"


def test_history_persists_between_sessions(chat_loop, tmp_path):
    history = tmp_path / "history"
    first = Talk(chat_loop)
    type_keys(first, f"/images{ENTER}{CTRL_D}", history)
    assert "/images" in history.read_text()
    second = Talk(chat_loop)
    type_keys(second, f"{UP}{ENTER}{CTRL_D}", history)  # the previous session's line, recalled
    assert user_lines(second) == ["/images"]


def test_history_lives_in_the_user_data_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert history_path() == tmp_path / "visionloop" / "chat_history"


def test_ctrl_c_during_a_job_cancels_it_and_the_session_goes_on(talk, plugin, chat_loop, tmp_path):  # noqa: F811
    plugin.slow_stopped.clear()

    def interrupt():
        chat_loop.busy.wait(20)
        time.sleep(0.1)
        _thread.interrupt_main()

    threading.Thread(target=interrupt, daemon=True).start()
    started = time.monotonic()
    out = type_keys(talk, f"/slow --seconds 30{ENTER}/slow --seconds 0.01{ENTER}{CTRL_D}", tmp_path / "h")
    assert time.monotonic() - started < 20
    assert plugin.slow_stopped.is_set()
    assert out.splitlines()[1:] == ["cancelled", "finished"]


def test_a_bad_path_answers_in_one_line(talk, tmp_path):
    out = type_keys(talk, f"what is in {tmp_path}/nope.png?{ENTER}/images{ENTER}{CTRL_D}", tmp_path / "h")
    assert f"error: {tmp_path}/nope.png: file not found\n" in out
    assert "no images yet" in out


# --- completion ------------------------------------------------------------------------------

def completions(talk, text: str) -> list[str]:
    doc = Document(text, len(text))
    return [c.text for c in ChatCompleter(talk.chat).get_completions(doc, CompleteEvent(completion_requested=True))]


def test_completes_commands_and_tool_names(talk):
    assert completions(talk, "/im") == ["/image", "/images"]
    expected = ["/read", "/read-text", "/reset"] + (["/restyle"] if "restyle" in talk.chat.registry.tools else [])
    assert completions(talk, "/re") == expected
    assert completions(talk, "/s") == ["/save", "/see", "/segment", "/slow"]
    assert "/see" not in completions(talk, "/see --") and "--question" in completions(talk, "/see --")  # options, not paths


def test_completes_paths_numbers_and_workflows(talk, tmp_path, example_image):
    shutil.copy(example_image, tmp_path / "harbour.png")
    shutil.copy(example_image, tmp_path / "hat.png")
    assert sorted(completions(talk, f"what is in {tmp_path}/ha")) == ["rbour.png", "t.png"]
    assert sorted(completions(talk, f"/image {tmp_path}/har")) == ["bour.png"]
    talk.chat.session.attach(str(example_image))
    assert completions(talk, "describe #") == ["#1"]
    assert "alt-text" in completions(talk, "/run al")


def test_a_colour_code_typed_at_the_prompt_is_not_read_as_a_mouse_report():
    # prompt_toolkit takes ESC[31m for a mouse report, and its own handler fails on it
    # ("Unhandled exception in event loop", then a "Press ENTER" that eats the next line)
    handlers = key_bindings().get_bindings_for_keys((Keys.Vt100MouseEvent,))
    assert handlers, "the chat handles mouse reports itself"
    handlers[-1].handler(SimpleNamespace(data="\x1b[31m", app=None))  # dropped, no exception
