"""Glitches a user met in the chat and around it (issue 11): /run's streamed text glued to its
summary and printed twice, `/run NAME #2` refused, `/open` saying "opened" when the viewer failed
(tests/test_chat_viewer.py), typing during a job garbling the prompt, Tab after `/draw --`,
`/bogus` answered as if it were fine, `-q` read two ways, `-` not reading stdin, and a dry run
listing models its workflow never loads."""

from __future__ import annotations

import io
import json
import textwrap
import threading
import time
from pathlib import Path

import pytest
from prompt_toolkit.formatted_text import to_formatted_text
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

import visionloop.chat.repl as repl
from chat_fixtures import Talk

ENTER, CTRL_D = "\r", "\x04"


def completions(talk, text: str) -> list[str]:
    from prompt_toolkit.completion import CompleteEvent
    from prompt_toolkit.document import Document

    event = CompleteEvent(completion_requested=True)
    return [c.text for c in repl.ChatCompleter(talk.chat).get_completions(Document(text, len(text)), event)]


# --- 1. /run: streamed step text on its own line, never printed twice -------------------------

def test_run_streams_each_step_on_its_own_line_and_does_not_repeat_it(chat_loop, pics):
    t = Talk(chat_loop, stream=True)
    t.say(f"/image {pics[0]}")
    out, err = t.say("/run alt-text")
    assert err == "", err
    streamed, summary = out.split("workflow alt-text: ", 1)
    assert summary.startswith("ok (") and streamed.endswith("\n")  # the summary starts a line of its own
    run_dir = Path(summary.split("(", 1)[1].split(")\n", 1)[0])
    alt = json.loads((run_dir / "manifest.json").read_text())["outputs"]["alt"].strip()
    assert alt and alt in streamed and out.count(alt) == 1  # streamed as the step ran, not printed again
    assert "\n  alt: (shown above)\n" in summary


# --- 3. /run NAME #2 ------------------------------------------------------------------------

def test_run_takes_an_image_number_for_the_image_input(talk, pics):
    talk.say(f"/image {pics[0]}")
    talk.say(f"/image {pics[1]}")
    for line in ("/run alt-text #1 --dry-run", "/run alt-text image=#1 --dry-run", "/run --dry-run alt-text -i image=#1"):
        out, err = talk.say(line)
        assert err == "" and f"input image = {pics[0]!r}" in out, (line, err)
    out, err = talk.say("/run alt-text --dry-run")  # none given: the current image
    assert err == "" and f"input image = {pics[1]!r}" in out
    _, err = talk.say("/run alt-text #1 #2 --dry-run")
    assert err == "error: /run: #1 #2: workflow alt-text takes its image input 'image'; give images as NAME=#N\n"
    _, err = talk.say("/run alt-text #7 --dry-run")
    assert err == "error: there is no image #7 (images: #1 to #2)\n"


# --- 4. typing while a job runs ----------------------------------------------------------------

def test_typing_during_a_job_goes_to_the_prompt_and_answers_print_above_it(chat_loop, tmp_path, monkeypatch):
    talk = Talk(chat_loop)
    sessions = []
    made = repl.make_prompt_session
    monkeypatch.setattr(repl, "make_prompt_session", lambda *a, **k: sessions.append(made(*a, **k)) or sessions[-1])
    typed = "/parrot typed meanwhile"
    seen = {}
    with create_pipe_input() as inp:
        def typist():
            assert chat_loop.busy.wait(20)
            inp.send_text(typed)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and sessions[0].default_buffer.text != typed:
                time.sleep(0.02)
            seen.update(buffer=sessions[0].default_buffer.text, running=chat_loop.busy.is_set(),
                        prompt_up=sessions[0].app.is_running)
            while chat_loop.busy.is_set():
                time.sleep(0.02)
            time.sleep(0.2)
            inp.send_text(ENTER + CTRL_D)

        threading.Thread(target=typist, daemon=True).start()
        inp.send_text(f"/slow --seconds 1{ENTER}")
        assert repl.run_terminal(talk.chat, history_file=tmp_path / "h", input=inp, output=DummyOutput()) == 0
    # the prompt was up while the job ran, and what was typed went into its input line
    assert seen == {"buffer": typed, "running": True, "prompt_up": True}
    assert talk.out.getvalue().splitlines()[1:] == ["finished", "typed meanwhile"]


class _App:
    """What `LiveOutput` needs of a prompt_toolkit application that is not running."""

    def __init__(self):
        self.output, self.is_running, self.is_done, self.loop = _Screen(), False, False, None
        self.invalidated = 0

    def invalidate(self):
        self.invalidated += 1


class _Screen:
    def __init__(self):
        self.text = ""

    def enable_autowrap(self):
        pass

    def write_raw(self, text):
        self.text += text

    def flush(self):
        pass


def test_a_line_not_yet_ended_is_shown_above_the_input_line_not_written_into_it():
    from visionloop.chat.live import LiveOutput

    app = _App()
    live = LiveOutput(app, io.StringIO())
    live.write("The light")
    live.write("house ")
    live.flush()
    assert app.output.text == "" and live.tail() == "The lighthouse "  # streaming: kept off the input line
    shown = to_formatted_text(live.message("visionloop> ")())
    assert "".join(text for _, text, *_ in shown) == "The lighthouse \nvisionloop> "
    live.write("stands.\nnext")
    assert app.output.text == "The lighthouse stands.\n" and live.tail() == "next"
    live.write("\r 10%|#")
    live.write("\r 20%|##")  # a progress bar redrawn in place: its latest state
    assert live.tail() == " 20%|##" and app.invalidated >= 5
    live.close()
    assert app.output.text.endswith("next\r 10%|#\r 20%|##")


def test_the_line_entered_stays_on_screen_above_the_prompt(capsys):
    repl.echo("describe\nthis")
    assert capsys.readouterr().out == "visionloop> describe\n........... this\n"
    repl.echo("y" * 100_000)
    assert capsys.readouterr().out == "visionloop> " + "y" * 60 + "... (100,000 characters)\n"


# --- 5. completion of options --------------------------------------------------------------------

def test_tab_completes_options_their_values_commands_and_numbers(talk, pics):
    assert completions(talk, "/draw --")[:4] == ["--help", "--prompt", "--negative-prompt", "--negative"]
    assert completions(talk, "/draw --s") == ["--size", "--steps", "--seed", "--scheduler"]
    assert completions(talk, "/see -")[:5] == ["--help", "-h", "--image", "-q", "--question"]
    assert completions(talk, "/read --en") == ["--engine"]  # an alias: the tool's options
    assert completions(talk, "/caption --detail ") == ["short", "long"]
    assert completions(talk, "/run alt-text --") == ["--input", "--dry-run"]
    assert completions(talk, "/bogus --") == []
    assert completions(talk, "/dr") == ["/draw"]
    talk.chat.session.attach(pics[0])
    assert completions(talk, "/caption #") == ["#1"] and completions(talk, "/run alt-text image=#") == ["#1"]


# --- 6. an unknown command is an error -----------------------------------------------------------

def test_an_unknown_command_is_an_error_with_a_did_you_mean(talk, chat_loop):
    out, err = talk.say("/bogus")
    assert out == "" and err == "error: unknown command /bogus (see /help)\n"
    out, err = talk.say("/imagse")
    assert out == "" and err == "error: unknown command /imagse (did you mean /image? see /help)\n"
    out, err = talk.say("/captoin #1")
    assert "did you mean /caption?" in err
    out, err = talk.say("/draw --bogus 3 a cat")  # a wrong option is a mistake too
    assert out == "" and err.startswith("error: /draw: unrecognized arguments: --bogus")
    t = Talk(chat_loop, json_mode=True)
    t.say("/bogus")
    line = json.loads(t.out.getvalue())
    assert line["error"] == "unknown command /bogus (see /help)" and line["text"] == ""


# --- 7. -q: the question under `see`, quiet everywhere else -------------------------------------

@pytest.fixture
def parser(registry):
    from visionloop.cli.app import build_parser

    return build_parser(registry)


def test_q_is_the_question_under_see_and_quiet_elsewhere(parser):
    args = parser.parse_args(["see", "x.png", "-q", "what?"])
    assert args.question == ["what?"] and not getattr(args, "quiet", False)  # -q repeats: a list
    args = parser.parse_args(["see", "x.png", "--quiet", "-q", "what"])
    assert args.question == ["what"] and args.quiet is True
    assert parser.parse_args(["caption", "x.png", "-q"]).quiet is True
    assert parser.parse_args(["-q", "see", "x.png", "-q", "what"]).quiet is True  # before the command: quiet


def test_help_says_what_q_means(parser):
    sub = next(a for a in parser._actions if a.dest == "command")
    see = " ".join(sub.choices["see"].format_help().split())
    assert "-q QUESTION, --question QUESTION what to ask about the images (repeat -q for several questions: " \
           "one answer each) (-q is this option here; quiet is written --quiet)" in see
    assert "--quiet only errors and results (here -q is taken by this command's own option: write --quiet)" in see
    for name, command in sub.choices.items():
        if name != "see":
            assert "-q, --quiet only errors and results" in " ".join(command.format_help().split()), name


# --- 8. `-` reads the image from stdin -----------------------------------------------------------

@pytest.fixture
def stdin(monkeypatch):
    import visionloop.images.stdin as module

    def give(data: bytes, terminal: bool = False):
        stream = io.TextIOWrapper(io.BytesIO(data))
        stream.isatty = lambda: terminal
        monkeypatch.setattr("sys.stdin", stream)

    module._reset()
    yield give
    module._reset()


def test_a_dash_reads_the_image_from_stdin(cli, stdin, example_image):
    stdin(example_image.read_bytes())
    result = cli("caption", "-", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out.splitlines()[0])["data"]["images"] == ["<stdin>"]
    stdin(example_image.read_bytes())
    result = cli("see", "-", "-q", "what is it?", "--json")
    assert result.code == 0 and json.loads(result.out.splitlines()[0])["data"]["images"] == ["<stdin>"]
    stdin(example_image.read_bytes())
    result = cli("read-text", "-", "--json")
    assert result.code == 0 and json.loads(result.out.splitlines()[0])["data"]["image"] == "<stdin>"


def test_stdin_that_is_empty_a_terminal_too_large_or_no_image_is_one_line(cli, stdin, example_image, tmp_path):
    stdin(b"")
    assert cli("caption", "-").err == "error: <stdin>: nothing was piped in (stdin is empty)\n"
    stdin(b"", terminal=True)
    assert cli("caption", "-").err == ("error: <stdin>: stdin is a terminal, not an image: pipe one in, "
                                       "e.g. visionloop caption - < photo.jpg\n")
    stdin(b"hello\n")
    result = cli("read-text", "-")
    assert result.code == 1 and result.err.startswith("error: <stdin>: not a supported image (detected: text")
    config = tmp_path / "small.yaml"
    config.write_text(textwrap.dedent("""\
        profile: tiny
        images:
          max_file_mb: 0.001
        """))
    stdin(example_image.read_bytes())
    result = cli("--config", config, "caption", "-")
    assert result.err == "error: <stdin>: file too large: more than the limit of 0.001 MB was piped in\n"


def test_the_chat_never_reads_its_stdin_as_an_image(registry, two_images):
    from visionloop.chat.router import route

    assert route("/caption --image -", two_images, registry.tools).args == {"image": ["-"]}  # a file named "-"


# --- 9. a dry run lists the models its steps use, only those ---------------------------------------

def test_a_dry_run_lists_only_the_models_its_steps_use(cli, tmp_path, example_image):
    plan = json.loads(cli("run", "alt-text", "--input", f"image={example_image}", "--dry-run", "--json").out
                      .splitlines()[0])
    assert set(plan["models"]) == {"vision", "ocr"} and plan["models"]["ocr"]["engines"] == ["auto"]
    flow = tmp_path / "just-draw.yaml"
    flow.write_text(textwrap.dedent("""\
        name: just-draw
        inputs:
          subject: {type: text}
        steps:
          - id: draw
            tool: draw
            with: {prompt: "${inputs.subject}"}
          - id: read
            tool: read-text
            with: {image: "${steps.draw.image}", engine: llava}
        outputs:
          picture: "${steps.draw.image}"
        """))
    result = cli("run", flow, "--input", "subject=a cat", "--dry-run")
    assert result.code == 0, result.err
    assert "  models: vision tiny, diffusion tiny (device" in result.out  # read-text with llava: no OCR
    describe = cli("run", "describe-and-redraw", "--input", f"image={example_image}", "--dry-run")
    assert "  models: vision tiny, diffusion tiny (" in describe.out
