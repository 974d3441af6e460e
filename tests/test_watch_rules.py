"""Watch-rule options and recovery paths: the periodic rescan, recursive folders, on_success:
move, transient errors retried with backoff (a test tool that reports a busy file)."""

from __future__ import annotations

import errno
import json
import shutil
import time
from pathlib import Path

import pytest

from visionloop.config import WatchRule
from visionloop.hookspecs import hookimpl
from visionloop.tools import Input, Tool, ToolResult
from visionloop.watch import Watcher
from watch_helpers import make_rule, png, wait_for, watch_folder

FLAKY = """\
name: flaky
inputs:
  image: {type: image}
steps:
  - id: busy
    tool: flaky
    with: {image: "${inputs.image}"}
"""


class FlakyPlugin:
    """A tool that reports EBUSY for the first `failures[name]` calls on a file."""

    failures: dict[str, int] = {}
    calls: dict[str, int] = {}

    @staticmethod
    def run(ctx, image):
        name = Path(image).name
        FlakyPlugin.calls[name] = FlakyPlugin.calls.get(name, 0) + 1
        if FlakyPlugin.calls[name] <= FlakyPlugin.failures.get(name, 0):
            raise OSError(errno.EBUSY, "Device or resource busy", image)
        return ToolResult(tool="flaky", text="ok")

    @hookimpl
    def register_tools(self, register):
        register(Tool("flaky", "fails while the file is 'busy'", [Input("image", "image", required=True)],
                      run=FlakyPlugin.run))


@pytest.fixture
def env(tmp_path):
    watch_folder(tmp_path)
    (tmp_path / "flaky.yaml").write_text(FLAKY)
    return tmp_path


def rule(env: Path, **kw) -> WatchRule:
    return make_rule(env, **{"name": "r", "settle": 0.1, **kw})


def test_periodic_rescan_finds_files_whose_events_were_lost(env, loop, registry, tiny_config, watchers):
    done = []
    w = Watcher([rule(env, rescan=0.3)], loop, registry, tiny_config, announce=done.append)
    watchers.append(w)
    w.start()
    w.events._observer.stop()  # the OS drops every event from now on (queue overflow, a network share)
    w.events._observer.join()
    png(env / "in" / "late.png")
    assert wait_for(lambda: len(done) == 1)
    assert "late.png" in done[0]


def test_recursive_rule_takes_a_folder_moved_in_and_on_success_move(env, loop, registry, tiny_config, watchers):
    done = []
    w = Watcher([rule(env, recursive=True, on_success="move")], loop, registry, tiny_config,
                announce=done.append)
    watchers.append(w)
    w.start()
    staging = env / "staging"
    (staging / "deeper").mkdir(parents=True)
    png(staging / "a.png", 1)
    png(staging / "deeper" / "b.png", 2)
    shutil.move(str(staging), str(env / "in" / "batch"))  # mv dir/ watch/
    assert wait_for(lambda: len(done) == 2)
    processed = env / "in" / "processed"
    assert sorted(p.name for p in processed.iterdir()) == ["a.png", "b.png"]  # moved after the run
    assert not (env / "in" / "batch" / "a.png").exists()
    time.sleep(0.5)
    assert len(done) == 2  # processed/ inside the watched tree is never taken again


def test_transient_error_is_retried_with_backoff(env, loop, tiny_config, watchers):
    from visionloop.plugins import load_registry

    registry = load_registry(extra=[FlakyPlugin()])
    FlakyPlugin.failures.update({"once.png": 1, "always.png": 99})
    png(env / "in" / "once.png", 1)
    png(env / "in" / "always.png", 2)
    w = Watcher([rule(env, workflow=str(env / "flaky.yaml"), retries=2)], loop, registry, tiny_config,
                backoff=0.05)
    watchers.append(w)
    assert w.run_once() == {"processed": 1, "failed": 1, "skipped": 0, "unfinished": 0}
    rows = {Path(r["path"]).name: r for r in next(iter(w.ledgers.values())).rows()}
    assert rows["once.png"]["state"] == "done" and rows["once.png"]["attempts"] == 2
    assert FlakyPlugin.calls["always.png"] == 3  # the first try and 2 retries, then it gives up
    record = json.loads((env / "in" / "failed" / "always.png.error.json").read_text())
    assert record["error"].startswith("transient, gave up after 3 attempts") and record["attempts"] == 3
