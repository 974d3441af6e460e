"""The watcher under faults: symbolic links, a `failed` path that is a file, a file deleted
during its run, a watched folder deleted and made again, errors that keep coming, and stopping
while a job will not stop. Real files; test tools registered like plugins."""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from pathlib import Path

import pytest

from visionloop.hookspecs import hookimpl
from visionloop.tools import Input, Tool, ToolResult
from visionloop.watch import Watcher, WatchError
from visionloop.watch.stability import Ready
from watch_helpers import make_rule, png, wait_for, watch_folder

ONE_STEP = """\
name: one
inputs:
  image: {{type: image}}
steps:
  - id: s
    tool: {tool}
    with: {{image: "${{inputs.image}}"}}
"""


class FaultTools:
    """`vanish` deletes its input then fails; `hang` ignores cancel until `release` is set."""

    release = threading.Event()
    hanging = threading.Event()

    @staticmethod
    def vanish(ctx, image):
        os.unlink(image)
        raise RuntimeError("the picture went away")

    @staticmethod
    def hang(ctx, image):
        FaultTools.hanging.set()
        FaultTools.release.wait(300)  # deaf to ctx.cancel on purpose
        return ToolResult(tool="hang", text="late")

    @hookimpl
    def register_tools(self, register):
        for name in ("vanish", "hang"):
            register(Tool(name, f"test tool {name}", [Input("image", "image", required=True)],
                          run=getattr(FaultTools, name)))


@pytest.fixture
def env(tmp_path):
    watch_folder(tmp_path)
    for tool in ("vanish", "hang"):
        (tmp_path / f"{tool}.yaml").write_text(ONE_STEP.format(tool=tool))
    return tmp_path


@pytest.fixture(scope="module")
def fault_registry():
    from visionloop.plugins import load_registry

    return load_registry(extra=[FaultTools()])


def rule(env: Path, **kw):
    return make_rule(env, **{"settle": 0.05, **kw})


def bad_png(path: Path) -> Path:
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    return path


# --- defect 3: symbolic links are never followed, and nothing outside the folder is moved ------------
def test_event_for_a_linked_folder_is_not_followed(env, loop, registry, tiny_config, watchers):
    outside = env / "outside"
    outside.mkdir()
    png(outside / "secret.png", 1)
    (env / "in" / "link").symlink_to(outside, target_is_directory=True)
    w = Watcher([rule(env, recursive=True)], loop, registry, tiny_config)
    watchers.append(w)
    on_event = w.events.handler(w.rules[0])
    on_event("change", str(env / "in" / "link"))  # the link appearing
    on_event("change", str(env / "in" / "link" / "secret.png"))  # a file seen through it
    assert len(w.tracker) == 0


def test_a_file_reached_through_a_link_is_never_run_or_moved(env, loop, registry, tiny_config, watchers):
    outside = env / "outside"
    outside.mkdir()
    secret = bad_png(outside / "secret.png")
    (env / "in" / "link").symlink_to(outside, target_is_directory=True)
    w = Watcher([rule(env, recursive=True, on_success="move")], loop, registry, tiny_config)
    watchers.append(w)
    path = env / "in" / "link" / "secret.png"
    st = os.stat(path)
    result = w.runner.process(w.rules[0], Ready(path, "alt", st.st_size, st.st_mtime_ns, 0.0))
    assert result.kind == "skipped" and "outside the watched folder" in result.detail
    assert secret.is_file() and not (env / "in" / "failed").exists()
    assert next(iter(w.ledgers.values())).rows() == []


# --- defect 14: a `failed` path that is not a folder ---------------------------------------------------
def test_a_failed_path_that_is_a_file_is_refused_at_start(env, loop, registry, tiny_config):
    (env / "in" / "failed").write_text("not a folder")
    with pytest.raises(WatchError) as info:
        Watcher([rule(env)], loop, registry, tiny_config)
    message = str(info.value)
    assert message.startswith(f"{env / 'in' / 'failed'}: watch rule 'alt': the failed folder is a regular file")
    assert "\n" not in message


def test_a_failed_move_leaves_nothing_stuck(env, loop, registry, tiny_config, watchers):
    bad = bad_png(env / "in" / "bad.png")
    w = Watcher([rule(env)], loop, registry, tiny_config)
    watchers.append(w)
    (env / "in" / "failed").write_text("appeared after the start")  # the move into failed/ cannot work
    assert w.run_once() == {"processed": 0, "failed": 1, "skipped": 0, "unfinished": 0}
    (row,) = next(iter(w.ledgers.values())).rows()
    assert row["state"] == "failed" and "left in place" in row["error"]
    assert bad.is_file() and not list((env / "in").glob("*.error.json"))
    assert w.run_once() == {"processed": 0, "failed": 0, "skipped": 1, "unfinished": 0}  # recorded, not queued
    (env / "in" / "failed").unlink()
    assert w.retry_failed() == 1  # put back in line where it is
    assert w.run_once()["failed"] == 1
    assert (env / "in" / "failed" / "bad.png").is_file() and (env / "in" / "failed" / "bad.png.error.json").is_file()


# --- defect 19: the error record of a file deleted during its run ----------------------------------
def test_a_file_deleted_during_its_run_gets_no_record_in_the_watched_folder(env, loop, fault_registry,
                                                                           tiny_config, watchers):
    png(env / "in" / "vanish.png", 3)
    w = Watcher([rule(env, workflow=str(env / "vanish.yaml"))], loop, fault_registry, tiny_config)
    watchers.append(w)
    assert w.run_once() == {"processed": 0, "failed": 1, "skipped": 0, "unfinished": 0}
    assert sorted(p.name for p in (env / "in").iterdir()) == ["failed"]
    record = json.loads((env / "in" / "failed" / "vanish.png.error.json").read_text())
    assert "the picture went away" in record["error"] and record["note"] == "the file was gone"


# --- defect 19: a watched folder deleted and made again ---------------------------------------------
def test_a_watched_folder_deleted_and_made_again_is_noticed(env, loop, registry, tiny_config, watchers, caplog):
    caplog.set_level(logging.WARNING, logger="visionloop.watch")
    done = []
    w = Watcher([rule(env, rescan=3600)], loop, registry, tiny_config, announce=done.append)  # events only
    watchers.append(w)
    w.start()
    shutil.rmtree(env / "in")
    assert wait_for(lambda: "watched folder is gone" in caplog.text)
    (env / "in").mkdir()
    assert wait_for(lambda: "watched folder was made again" in caplog.text)
    png(env / "in" / "after.png", 4)
    assert wait_for(lambda: len(done) == 1)
    assert "after.png: done" in done[0]
    assert caplog.text.count("watched folder is gone") == 1


# --- defect 10: errors that keep coming are capped and reported ------------------------------------
def test_an_error_that_keeps_coming_is_given_up_and_said(env, loop, registry, tiny_config, watchers, monkeypatch):
    from visionloop.watch.runner import Runner

    calls = []

    def broken(self, rs, ready):
        calls.append(ready.path)
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(Runner, "process", broken)
    png(env / "in" / "a.png", 5)
    said = []
    w = Watcher([rule(env)], loop, registry, tiny_config, announce=said.append, backoff=0.01)
    watchers.append(w)
    result = {}
    t = threading.Thread(target=lambda: result.update(counts=w.run_once()), daemon=True)
    t.start()
    t.join(120)  # a deadlock guard: the fixed watcher returns after a few short retries
    assert result.get("counts") == {"processed": 0, "failed": 0, "skipped": 0, "unfinished": 1}
    assert len(calls) == 4  # the first try and 3 retries
    assert said == ["[alt] a.png: not processed after 4 tries: unexpected error: RuntimeError: disk on fire; "
                    "left where it is until it changes"]
    assert (env / "in" / "a.png").is_file()
    assert w.run_once()["unfinished"] == 0 and len(calls) == 4  # unchanged: not tried again and again


def test_an_unexpected_error_after_the_claim_is_recorded_not_left_running(env, loop, registry, tiny_config,
                                                                           watchers, monkeypatch):
    from visionloop.watch import runner

    def broken(*args, **kw):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(runner.Runner, "_run", broken)
    png(env / "in" / "a.png", 6)
    w = Watcher([rule(env)], loop, registry, tiny_config)
    watchers.append(w)
    assert w.run_once()["failed"] == 1
    (row,) = next(iter(w.ledgers.values())).rows()
    assert row["state"] == "failed" and "unexpected error in the watcher: OSError" in row["error"]


# --- defect 11: stopping cancels the job in hand and never waits without bound ----------------------
def test_stop_with_a_job_that_will_not_stop_is_bounded_and_said(env, fault_registry, tiny_config, caplog):
    from visionloop.context import Context
    from visionloop.loop import Loop

    caplog.set_level(logging.WARNING, logger="visionloop.watch")
    FaultTools.release.clear()
    FaultTools.hanging.clear()
    own_loop = Loop(fault_registry, Context.create(tiny_config, env / "ctx"))
    png(env / "in" / "h.png", 7)
    w = Watcher([rule(env, workflow=str(env / "hang.yaml"))], own_loop, fault_registry, tiny_config,
                grace=0.1, cancel_wait=0.2)
    try:
        w.start()
        assert FaultTools.hanging.wait(120)
        result = {}
        t = threading.Thread(target=lambda: result.update(clean=w.stop()), daemon=True)
        t.start()
        t.join(120)  # a deadlock guard: an unbounded join would never return
        assert result == {"clean": False}
        assert own_loop.ctx.cancel.is_set()  # the job in hand was cancelled
        assert "did not stop within 0.2 s of being cancelled" in caplog.text
        from visionloop.watch import Ledger

        led = Ledger(env / "out")  # the lock was released
        (row,) = led.rows()
        led.close()
        assert row["state"] == "queued"  # the file runs again next time
    finally:
        FaultTools.release.set()
        own_loop.close()
