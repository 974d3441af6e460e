"""`visionloop chat` in a real terminal (pexpect): /help, a pasted blob and other mistakes, a
drawing, Ctrl-C cancelling a long job, /quit; and `chat --watch`, whose results appear between turns."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import time

import pytest

from conftest import ROOT
from chat_fixtures import SLOW_PLUGIN, config_with


def test_watch_results_appear_between_turns(session_config_file, tmp_path, example_image, env):
    inbox, done = tmp_path / "inbox", tmp_path / "done"
    inbox.mkdir()
    config = config_with(session_config_file, tmp_path, watch=[
        {"name": "alt", "folder": str(inbox), "workflow": "alt-text", "output": str(done), "settle": 0.2}])
    proc = subprocess.Popen([sys.executable, "-m", "visionloop", "--config", config, "chat", "--watch"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **env})
    try:
        shutil.copy(example_image, inbox / "arrived.png")
        line = proc.stdout.readline()  # blocks until the watcher speaks (or the chat ends)
        assert line.startswith("[alt] arrived.png: done -> "), (line, proc.stderr.read() if not line else "")
        rest, err = proc.communicate("/images\n", timeout=120)  # then stdin ends: the chat leaves
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "no images yet" in rest


def test_real_terminal_help_mistakes_draw_ctrl_c_quit(session_config_file, tmp_path, env):
    pexpect = pytest.importorskip("pexpect")
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "slow_tool.py").write_text(SLOW_PLUGIN)
    config = config_with(session_config_file, tmp_path, plugins={"paths": [str(plugins)]})
    out_dir = tmp_path / "drawn"
    child = pexpect.spawn(sys.executable, ["-m", "visionloop", "--config", config, "chat", "--out", str(out_dir)],
                          cwd=str(ROOT),
                          env={**os.environ, **env}, encoding="utf-8", timeout=180, dimensions=(40, 160))
    child.logfile_read = seen = io.StringIO()
    try:
        child.expect("visionloop>")
        child.send("/help\r")
        child.expect("/save FILE")
        child.expect("visionloop>")
        child.send("\x1b[200~" + "y" * 100_000 + "\x1b[201~\r")  # a pasted blob (bracketed paste, as terminals send it)
        child.expect("error: that line is 100,000 characters long; the chat reads at most 32,768 per line")
        child.expect("visionloop>")
        child.send("what is " + "x" * 300 + "?\r")  # longer than any file name; no image yet
        child.expect("Which image?")
        child.expect("visionloop>")
        child.send("draw ~5 small red boats\r")  # `~5` names no home folder: it is text
        child.expect(r"#1 (\S+\.png)")
        drawn = child.match.group(1).strip()
        assert os.path.isfile(drawn) and os.path.dirname(os.path.abspath(drawn)) == str(out_dir)
        assert "5-small-red-boats" in os.path.basename(drawn)
        child.expect("visionloop>")
        child.send("/slow --seconds 60\r")
        time.sleep(2)  # the job is running: Ctrl-C cancels it, not the chat
        started = time.monotonic()
        child.sendintr()
        child.expect("cancelled", timeout=30)
        assert time.monotonic() - started < 30
        child.expect("visionloop>")
        child.send("/quit\r")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0 and "Traceback" not in seen.getvalue()
    history = (tmp_path / "data" / "visionloop" / "chat_history").read_text()
    assert "/help" in history and "draw ~5 small red boats" in history and "yyyy" not in history
