"""`visionloop chat` as a script runs it: piped stdin (plain text and --json) and mistakes on
the command line. The real terminal and --watch are in test_chat_terminal.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import run_subprocess

def test_piped_plain_text(example_image, env):
    lines = f"hello\nwhat's in nope.png?\n/image {example_image}\n/images\nread the text\n/reset\n/images\n"
    proc = run_subprocess("chat", input=lines, env=env)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    assert out[0].startswith("I'm not sure what to do with that")
    assert out[1:3] == [f"#1 {example_image} (256x192)", f"#1 {example_image} (256x192, you)"]
    assert out[-2:] == ["forgot the conversation and the images",
                        "no images yet: add one with /image PATH, or mention its path"]
    assert len(out) >= 6  # the text read from the image sits between
    assert proc.stderr.strip().splitlines() == ["error: nope.png: file not found"]


def test_piped_json_lines(example_image, env):
    proc = run_subprocess("chat", "--json", str(example_image), input="describe it\nread the text\n/quit\ndraw\n",
                          env=env)
    assert proc.returncode == 0, proc.stderr
    objects = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [o["tool"] for o in objects] == ["caption", "read-text"]
    for obj in objects:
        assert set(obj) == {"tool", "text", "images", "data", "error"} and obj["error"] is None
    assert objects[0]["data"]["images"] == [str(example_image)]


def test_piped_mistakes_get_one_line_each_and_the_chat_goes_on(env):
    lines = [b"what is " + b"x" * 300 + b"?",  # a word longer than a file name, and no image yet
             b"z" * 100_000,  # a pasted blob
             b"/image caf\xe9.png",  # not UTF-8
             b"/image ~nosuchuser/x.png",
             b"draw ~5 cats",  # `~5` names no home: it is text
             b"/images"]
    proc = subprocess.run([sys.executable, "-m", "visionloop", "chat"], input=b"\n".join(lines) + b"\n",
                          capture_output=True, env={**os.environ, **env}, timeout=300)
    out, err = proc.stdout.decode(), proc.stderr.decode(errors="replace")
    assert proc.returncode == 0 and "Traceback" not in err, err
    errors = err.splitlines()
    assert len(errors) == 3 and len(err) < 600, err
    assert errors[0] == "error: that line is 100,000 characters long; the chat reads at most 32,768 per line, " \
                        "so nothing was done"
    assert errors[1].startswith("error: caf") and errors[1].endswith(".png: file not found")
    assert errors[2].startswith("error: ~nosuchuser/x.png: '~nosuchuser' names no home folder")
    answers = out.splitlines()
    assert answers[0].startswith("Which image?") and len(answers) == 3, out
    drawn = answers[1].split(" ", 1)[1]
    assert answers[1].startswith("#1 ") and os.path.isfile(drawn) and "5-cats" in drawn
    assert answers[2].startswith(f"#1 {drawn} (") and answers[2].endswith(", draw)")


def test_a_bad_image_on_the_command_line(env, tmp_path):
    proc = run_subprocess("chat", str(tmp_path / "missing.png"), input="", env=env)
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"error: {tmp_path / 'missing.png'}: file not found"
    assert "Traceback" not in proc.stderr


def test_watch_without_rules_is_a_config_error(env):
    proc = run_subprocess("chat", "--watch", input="", env=env)
    assert proc.returncode == 1 and "--watch needs watch rules" in proc.stderr
