"""The history of tool calls: written where `run_tool` records a result, whichever face made
the call; never able to fail a call; off with `history: false`; read by `visionloop logs`."""

from __future__ import annotations

import json
import logging

import pytest

from visionloop import history
from visionloop.tools import run_tool


def test_every_call_is_recorded_with_what_it_took_and_gave(fakes, ctx):
    [made] = run_tool(fakes.tool("paint"), {"prompt": "a hat", "seed": 4}, ctx)
    [failed] = run_tool(fakes.tool("boom"), {"text": "no"}, ctx)
    rows = history.rows()
    assert [r["tool"] for r in rows] == ["boom", "paint"]  # newest first
    paint = rows[1]
    assert paint["args"] == {"prompt": "a hat", "seed": 4, "strength": 0.5}
    assert paint["seed"] == 4 and paint["model"] == "fake-paint" and paint["error"] is None
    assert paint["images"] == made.images and paint["seconds"] >= 0 and paint["run"] is None
    assert paint["out_dir"] == str(ctx.out_dir.resolve()) and paint["time"].endswith("+00:00")
    assert rows[0]["error"] == failed.error and "refused" in rows[0]["error"]
    assert history.path().parent.name == "data"  # tests/conftest.py: VISIONLOOP_DATA_DIR


def test_a_workflow_step_names_its_run(fakes, ctx, tmp_path):
    from visionloop.workflows import load_workflow, run_workflow

    wf_file = tmp_path / "w.yaml"
    wf_file.write_text("name: w\nsteps:\n  - id: a\n    tool: echo\n    with: {text: hi}\noutputs: {t: '${steps.a.text}'}\n")
    outcome = run_workflow(load_workflow(str(wf_file), ctx.config, fakes), {}, ctx, fakes, tmp_path / "runs")
    [row] = history.rows()
    assert row["tool"] == "echo" and row["run"] == str(outcome.run_dir.resolve()) and row["text"] == "hi"
    assert history.rows(standalone=True) == []


def test_a_history_that_cannot_be_written_never_fails_the_call(fakes, ctx, tmp_path, monkeypatch, caplog):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("VISIONLOOP_DATA_DIR", str(blocker))  # the database cannot be made under a file
    with caplog.at_level(logging.WARNING, logger="visionloop.tools"):
        [result] = run_tool(fakes.tool("echo"), {"text": "still works"}, ctx)
    assert result.ok and result.text == "still works"

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(history, "record", broken)
    [result] = run_tool(fakes.tool("echo"), {"text": "again"}, ctx)
    assert result.ok and result.text == "again"


def test_history_false_records_nothing(fakes, ctx):
    import dataclasses

    quiet = dataclasses.replace(ctx, config=ctx.config.model_copy(update={"history": False}))
    run_tool(fakes.tool("echo"), {"text": "unseen"}, quiet)
    assert history.rows() == []
    run_tool(fakes.tool("echo"), {"text": "seen"}, ctx)
    assert [r["text"] for r in history.rows()] == ["seen"]


def test_the_config_key(tmp_path, cli):
    config = tmp_path / "c.yaml"
    config.write_text("history: false\n")
    from visionloop.config import load_config

    assert load_config(str(config)).history is False
    config.write_text("history: maybe\n")
    r = cli("--config", str(config), "tools")
    assert r.code == 1 and "history" in r.err


def test_filters_and_search(fakes, ctx):
    for text in ("red apple", "green pear", "red 100%_sure"):
        run_tool(fakes.tool("echo"), {"text": text}, ctx)
    run_tool(fakes.tool("paint"), {"prompt": "red roof"}, ctx)
    assert [r["text"] for r in history.rows(tool="echo", search="red")] == ["red 100%_sure", "red apple"]
    assert [r["tool"] for r in history.rows(search="RED roof")] == ["paint"]
    assert [r["text"] for r in history.rows(search="100%_")] == ["red 100%_sure"]
    assert history.rows(search="%") and not history.rows(search="_x_")
    assert len(history.rows(limit=2)) == 2 and len(history.rows(limit=None)) == 4


@pytest.fixture
def logged(cli, fakes, ctx):
    """Three calls in the history: two echoes and a paint."""
    run_tool(fakes.tool("echo"), {"text": "first words"}, ctx)
    run_tool(fakes.tool("paint"), {"prompt": "a blue door", "seed": 9}, ctx)
    run_tool(fakes.tool("boom"), {"text": "bad"}, ctx)
    return cli


def test_logs_shows_calls_oldest_first_with_filters_and_json(logged):
    cli = logged
    r = cli("logs")
    assert r.code == 0
    lines = [line for line in r.out.splitlines() if line.startswith("#")]
    assert [line.split()[3] for line in lines] == ["echo", "paint", "boom"]
    assert "seed 9" in lines[1] and "prompt: a blue door" in r.out and "error: boom: refused 'bad'" in r.out
    assert "-> " in r.out  # the picture's path
    r = cli("logs", "-n", "1")
    assert r.out.count("\n#") + r.out.startswith("#") == 1 and "boom" in r.out
    r = cli("logs", "--tool", "paint", "--json")
    [row] = json.loads(r.out)
    assert row["tool"] == "paint" and row["args"]["prompt"] == "a blue door" and row["seed"] == 9
    r = cli("logs", "--search", "first", "words", "--json")
    assert [row["text"] for row in json.loads(r.out)] == ["first words"]
    assert cli("logs", "-n", "-1").code == 2


def test_logs_with_no_history_says_where_it_looked(cli):
    r = cli("logs")
    assert r.code == 0 and r.out == "" and "no calls recorded" in r.err and "history.sqlite" in r.err
    assert cli("logs", "--json").out.strip() == "[]"
