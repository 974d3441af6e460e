"""`visionloop watch` from the command line: --once/--json, --status, usage errors, config
rules, and SIGTERM in the middle of a job (a real child process)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from PIL import Image

from visionloop.watch import Ledger
from json_lines import parse, results, watch_counts
from watch_helpers import watch_folder


@pytest.fixture
def env(tmp_path):
    watch_folder(tmp_path)
    for i in range(3):
        Image.new("RGB", (20, 20), (i * 40, 0, 0)).save(tmp_path / "in" / f"p{i}.png")
    return tmp_path


def test_once_json_then_status(env, cli):
    args = ("watch", env / "in", "--workflow", env / "wf.yaml", "--out", env / "out", "--settle", "0.1")
    r = cli(*args, "--once", "--json")
    assert r.code == 0, r.err
    assert watch_counts(r.out) == {"processed": 3, "failed": 0, "skipped": 0, "unfinished": 0}
    lines = results(r.out)  # one line per file, as each is done
    assert sorted(Path(obj["file"]).name for obj in lines) == ["p0.png", "p1.png", "p2.png"]
    assert all(obj["status"] == "done" and obj["error"] is None and obj["outputs"]["caption"] for obj in lines)
    assert all(Path(obj["run"], "manifest.json").is_file() for obj in lines)
    r = cli(*args, "--once", "--json")
    assert watch_counts(r.out) == {"processed": 0, "failed": 0, "skipped": 3, "unfinished": 0}
    assert results(r.out) == []
    r = cli(*args, "--status", "--json")
    (status,), summary = parse(r.out)
    assert r.code == 0 and status["rule"] == "in" and status["counts"]["done"] == 3 and summary["exit"] == 0
    r = cli(*args, "--status")
    assert r.out.startswith("in: ") and "done 3" in r.out


def test_rules_from_config(env, cli, session_config_file):
    config = yaml.safe_load(session_config_file.read_text())
    config["watch"] = [{"name": "inbox", "folder": str(env / "in"), "workflow": str(env / "wf.yaml"),
                        "output": str(env / "described"), "settle": 0.1}]
    path = env / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    r = cli("--config", path, "watch", "--once")
    assert r.code == 0, r.err
    assert "processed 3, failed 0, skipped 0" in r.out and r.out.count("[inbox]") == 3
    assert len([p for p in (env / "described").iterdir() if (p / "manifest.json").is_file()]) == 3


def test_usage_and_user_errors(env, cli):
    assert cli("watch", env / "in", "--out", env / "out").code == 2  # no --workflow
    r = cli("watch", env / "nope", "--workflow", env / "wf.yaml", "--out", env / "out", "--once")
    assert r.code == 1 and "folder not found" in r.err and "Traceback" not in r.err
    r = cli("watch", env / "in", "--workflow", env / "missing.yaml", "--out", env / "out", "--once")
    assert r.code == 1 and "missing" in r.err and "Traceback" not in r.err
    r = cli("watch", "--once")  # the session config has no watch rules
    assert r.code == 1 and "no watch rules" in r.err


def test_sigterm_mid_job_exits_0_and_nothing_is_lost(env):
    cmd = [sys.executable, "-m", "visionloop", "watch", str(env / "in"), "--workflow", str(env / "wf.yaml"),
           "--out", str(env / "out"), "--settle", "0.1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        deadline = time.monotonic() + 120
        states: list[str] = []
        while time.monotonic() < deadline and "running" not in states:  # the first job loads the models
            time.sleep(0.02)
            try:
                led = Ledger(env / "out", lock=False)
                states = [r["state"] for r in led.rows()]
                led.close()
            except Exception:  # the database may not exist yet
                states = []
        assert "running" in states, proc.stderr.read() if proc.poll() is not None else states
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    led = Ledger(env / "out")  # the lock was released
    rows = led.rows()
    led.close()
    assert "running" not in {r["state"] for r in rows}  # finished or re-queued, never left running
    # a later run does the rest: every file exactly once in all
    r = subprocess.run([*cmd, "--once", "--json"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    done_before = sum(1 for row in rows if row["state"] == "done")
    assert watch_counts(r.stdout)["processed"] == 3 - done_before
    assert len([p for p in (env / "out").iterdir() if p.is_dir()]) == 3


def test_bad_settle_is_a_one_line_usage_error(env, cli, session_config_file):
    base = ("watch", env / "in", "--workflow", env / "wf.yaml", "--out", env / "out", "--once")
    for value, expected in (("-1", "--settle: must be >= 0 (watch "), ("inf", "--settle: must be a finite number")):
        r = cli(*base, f"--settle={value}")
        assert r.code == 2 and expected in r.err and "Traceback" not in r.err and "pydantic" not in r.err
        assert len(r.err.strip().splitlines()) == 1
    # the config-rules path validates the override too (model_copy(update=...) would not)
    config = yaml.safe_load(session_config_file.read_text())
    config["watch"] = [{"name": "inbox", "folder": str(env / "in"), "workflow": str(env / "wf.yaml"),
                        "output": str(env / "described")}]
    path = env / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    r = cli("--config", path, "watch", "--settle=-0.5", "--once")
    assert r.code == 2 and "error: --settle: must be >= 0 (watch rule 'inbox')" in r.err
    assert not (env / "described").exists()


def test_output_under_a_regular_file_is_a_one_line_error(env, cli):
    (env / "e.yaml").write_text("not a folder\n")
    r = cli("watch", env / "in", "--workflow", env / "wf.yaml", "--out", env / "e.yaml" / "sub", "--once")
    assert r.code == 1 and "Traceback" not in r.err and len(r.err.strip().splitlines()) == 1
    assert f"{env / 'e.yaml' / 'sub'}: cannot create output folder" in r.err and "watch rule 'in'" in r.err


@pytest.mark.parametrize("flag", [("--out", "elsewhere"), ("--pattern", "*.png"), ("--input", "photo"),
                                  ("--recursive",), ("--workflow", "wf.yaml")])
def test_folder_flags_without_folder_are_usage_errors(env, cli, flag):
    r = cli("watch", *flag, "--once")  # config rules would silently ignore the flag
    assert r.code == 2 and f"error: {flag[0]} needs a FOLDER" in r.err


def test_once_exits_1_when_a_file_failed(env, cli):
    (env / "in" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    args = ("watch", env / "in", "--workflow", env / "wf.yaml", "--out", env / "out", "--settle", "0.1", "--once")
    r = cli(*args, "--json")
    assert r.code == 1, r.err
    assert watch_counts(r.out) == {"processed": 3, "failed": 1, "skipped": 0, "unfinished": 0}
    (failed,) = [obj for obj in results(r.out) if obj["error"]]
    assert failed["status"] == "failed" and failed["file"] == str(env / "in" / "broken.png")
    assert (env / "in" / "failed" / "broken.png").is_file()
    (env / "in" / "broken2.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated, too")
    r = cli(*args)  # a failure is said once: its line on stdout, no logger line on stderr
    assert r.code == 1 and r.out.count("broken2.png: failed (") == 1 and "broken2.png" not in r.err, r
    r = cli(*args)  # nothing new failed this time: exit 0 again
    assert r.code == 0 and "failed 0" in r.out


def test_chat_watch_without_rules_names_the_config(env, cli, session_config_file, monkeypatch):
    r = cli("chat", "--watch")
    assert r.code == 1 and f"error: {session_config_file}: --watch needs watch rules" in r.err
    monkeypatch.delenv("VISIONLOOP_CONFIG")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(env / "xdg"))  # no user config file either
    r = cli("--profile", "tiny", "chat", "--watch")
    assert r.code == 1 and "error: built-in defaults (no config file): --watch needs watch rules" in r.err


def test_once_json_says_on_stderr_which_files_it_waits_for(env, cli, monkeypatch):
    import threading

    from visionloop.watch import Watcher

    monkeypatch.setattr(Watcher, "wait_note_after", 0.3)  # 5 s in real use
    (env / "in" / "empty.png").touch()  # settled at 0 bytes: failed at once, not after the 300 s ceiling
    data = (env / "in" / "p0.png").read_bytes()
    (env / "in" / "p0.png").rename(env / "p0.png")
    fh = open(env / "in" / "slow.png", "wb")
    fh.write(data[:10])
    fh.flush()

    def writer():  # still being written when the pass starts, for ~1 s
        with fh:
            for i in range(10, len(data), max(1, len(data) // 6)):
                time.sleep(0.15)
                fh.write(data[i:i + max(1, len(data) // 6)])
                fh.flush()

    t = threading.Thread(target=writer)
    t.start()
    r = cli("watch", env / "in", "--workflow", env / "wf.yaml", "--out", env / "out", "--settle", "0.3",
            "--once", "--json")
    t.join()
    assert r.code == 1, r.err  # the empty file failed
    assert watch_counts(r.out) == {"processed": 3, "failed": 1, "skipped": 0, "unfinished": 0}
    waiting = [line for line in r.err.splitlines() if "waiting for" in line]
    assert len(waiting) == 1 and "slow.png: not settled after" in waiting[0], r.err
    assert json.loads((env / "in" / "failed" / "empty.png.error.json").read_text())["error"] == "empty file"
