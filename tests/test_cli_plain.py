"""Plain (not --json) output that issue 11 touched: the `tools` table in aligned columns, and a
plain `run`: its step lines said once (live on a terminal, or at the end in a pipe), and a run
whose first step fails printing its failure, never an empty outputs block."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).resolve().parent


def test_the_tools_table_keeps_its_columns_aligned(cli, registry):
    lines = cli("tools").out.splitlines()
    tools = sorted(registry.tools.values(), key=lambda t: t.name)
    heads = [line for line in lines if not line.startswith(" ")]
    assert [h.split()[0] for h in heads] == [t.name for t in tools]
    # every description starts in the same column, past the longest name
    assert len({h.index(t.description) for h, t in zip(heads, tools)}) == 1
    rows = [line for line in lines if line.startswith("    ")]
    assert len(rows) == sum(len(t.inputs) for t in tools)
    helps = {line.rindex(inp.help) for line, inp in zip(rows, [i for t in tools for i in t.inputs]) if inp.help}
    assert len(helps) == 1  # one column for the help, however long a type or a name is
    column = helps.pop()
    assert all(line[column - 2:column] == "  " for line in rows if len(line) > column)  # never run together


@pytest.fixture
def fake_run(cli, tmp_path, tiny_cache):
    """`run(workflow_text)`: a plain `visionloop run` of it with the fake tools."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    shutil.copy(HERE / "workflow_fakes.py", plugins / "workflow_fakes.py")
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"profile": "tiny", "cache_dir": str(tiny_cache), "output": str(tmp_path / "o"),
                                      "plugins": {"paths": [str(plugins)]}}))

    def run(text: str):
        wf = tmp_path / "wf.yaml"
        wf.write_text(text)
        return cli("--config", config, "run", wf)

    return run


ECHO = "name: e\nsteps:\n  - {id: a, tool: echo, with: {text: hi}}\noutputs:\n  said: ${steps.a.text}\n"


def test_a_pipe_gets_the_step_lines_at_the_end(fake_run):
    result = fake_run(ECHO)
    assert result.code == 0, result.err
    assert result.out.splitlines()[0] == "said: hi" and result.out.splitlines()[1].startswith("run folder: ")
    assert "  ok     a (echo)" in result.err


def test_a_terminal_saw_the_steps_live_so_they_are_not_said_again(fake_run, monkeypatch):
    from visionloop.cli import progress

    monkeypatch.setattr(progress, "_isatty", lambda stream: True)  # stderr a terminal: live step lines
    result = fake_run(ECHO)
    assert result.code == 0, result.err
    assert "a (echo): started" in result.err and "a (echo): done in" in result.err
    assert "  ok     a (echo)" not in result.err  # no recap of the steps at the end
    assert result.out.splitlines()[0] == "said: hi" and "run folder: " in result.out


def test_a_run_whose_first_step_fails_prints_the_failure_not_empty_outputs(fake_run):
    result = fake_run("name: b\nsteps:\n  - {id: a, tool: boom}\n  - {id: b, tool: echo, with: {text: "
                      "'${steps.a.text}'}}\noutputs:\n  said: ${steps.b.text}\n  first: ${steps.a.text}\n")
    assert result.code == 1
    assert "error: workflow b failed at step a: boom: refused 'x'" in result.err
    assert [line for line in result.out.splitlines() if not line.startswith("run folder: ")] == []
