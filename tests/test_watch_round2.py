"""`visionloop watch` faults found by a second new-user round: a name that is not valid UTF-8,
a ledger that is lost (deleted or emptied) beside earlier runs, a rule whose input is not an
image, a rule whose patterns take nothing, the same bad bytes dropped again."""

from __future__ import annotations

import os

import pytest
from json_lines import results, watch_counts
from watch_helpers import png, watch_folder

from visionloop.watch import ledger_path


@pytest.fixture
def env(tmp_path):
    watch_folder(tmp_path)
    png(tmp_path / "in" / "p0.png", 0)
    return tmp_path


def args(env, *more, workflow=None):
    return ("watch", env / "in", "--workflow", workflow or env / "wf.yaml", "--out", env / "out", "--settle", "0.05",
            *more)


def one_line_error(r, *parts: str) -> None:
    assert r.code == 1, (r.out, r.err)
    assert "Traceback" not in r.err and len(r.err.strip().splitlines()) == 1, r.err
    for part in parts:
        assert part in r.err, r.err


# --- a file name holding bytes that are not UTF-8 -------------------------------------------------------
def test_a_name_that_is_not_utf8_is_handled_once_and_never_left_running(env, cli):
    """Run like any other file (its name is written in the run's JSON records as an escape),
    recorded as done, and not run again."""
    from visionloop.watch import Ledger

    bad = os.fsdecode(b"bad\xff.png")
    png(env / "in" / bad, 7)
    r = cli(*args(env, "--once", "--json"))
    assert "Traceback" not in r.err and "unexpected error" not in r.err, r.err
    assert r.code == 0 and watch_counts(r.out) == {"processed": 2, "failed": 0, "skipped": 0, "unfinished": 0}, r
    ledger = Ledger(env / "out", lock=False)
    try:
        rows = {row["path"]: row["state"] for row in ledger.rows()}
    finally:
        ledger.close()
    assert rows[str(env / "in" / bad)] == "done" and (env / "in" / bad).exists(), rows
    r = cli(*args(env, "--once", "--json"))  # remembered: never run twice
    assert watch_counts(r.out) == {"processed": 0, "failed": 0, "skipped": 2, "unfinished": 0}, (r.out, r.err)


def test_a_bad_file_whose_name_is_not_utf8_goes_to_failed(env, cli):
    bad = os.fsdecode(b"junk\xfe.png")
    (env / "in" / bad).write_bytes(b"not an image at all" * 20)
    r = cli(*args(env, "--once", "--json"))
    assert r.code == 1 and "Traceback" not in r.err, (r.out, r.err)
    (line,) = [obj for obj in results(r.out) if obj["status"] == "failed"]
    assert line["file"] == str(env / "in" / bad) and line["moved_to"] == str(env / "in" / "failed" / bad)
    assert len(r.err.strip().splitlines()) == 1 and "failed (" in r.err, r.err  # said once, not twice
    assert (env / "in" / "failed" / bad).exists() and (env / "in" / "failed" / f"{bad}.error.json").exists()


# --- a lost ledger beside earlier runs --------------------------------------------------------------------
@pytest.mark.parametrize("how", ["deleted", "emptied"])
def test_a_lost_ledger_is_refused_not_silently_rerun(env, cli, how):
    assert cli(*args(env, "--once")).code == 0
    db = ledger_path(env / "out")
    for extra in ("-wal", "-shm"):
        db.with_name(db.name + extra).unlink(missing_ok=True)
    if how == "deleted":
        db.unlink()
    else:
        db.write_bytes(b"")
    r = cli(*args(env, "--once"))
    one_line_error(r, "ledger", "--reprocess")
    assert "processed" not in r.out
    r = cli(*args(env, "--once", "--reprocess", "--json"))  # the way out the message names
    assert r.code == 0 and watch_counts(r.out)["processed"] == 1, (r.out, r.err)
    assert watch_counts(cli(*args(env, "--once", "--json")).out) == {"processed": 0, "failed": 0, "skipped": 1,
                                                                     "unfinished": 0}


def test_a_first_start_with_an_output_folder_of_plain_runs_is_not_refused(env, cli):
    (env / "out" / "20260101-000000-alt-p9").mkdir(parents=True)  # e.g. `visionloop run ... --out out`
    (env / "out" / "20260101-000000-alt-p9" / "manifest.json").write_text("{}")
    r = cli(*args(env, "--once", "--json"))
    assert r.code == 0 and watch_counts(r.out)["processed"] == 1, (r.out, r.err)


# --- the rule's input must be an image ----------------------------------------------------------------
TEXT_WORKFLOW = """\
name: textonly
inputs:
  prompt: {type: text}
steps:
  - id: d
    tool: draw
    with: {prompt: "${inputs.prompt}"}
"""


def test_a_rule_whose_input_is_not_an_image_is_refused(env, cli):
    (env / "text.yaml").write_text(TEXT_WORKFLOW)
    r = cli(*args(env, "--once", "--input", "prompt", workflow=env / "text.yaml"))
    one_line_error(r, "watch rule", "'prompt'", "not an image")
    assert not (env / "out").exists() or not any((env / "out").iterdir())


# --- patterns that take nothing ------------------------------------------------------------------------
def test_empty_patterns_are_refused(env, cli, session_config_file):
    import yaml

    config = yaml.safe_load(session_config_file.read_text())
    config["watch"] = [{"name": "inbox", "folder": str(env / "in"), "workflow": str(env / "wf.yaml"),
                        "output": str(env / "out"), "patterns": []}]
    (env / "c.yaml").write_text(yaml.safe_dump(config))
    r = cli("--config", env / "c.yaml", "watch", "--once")
    one_line_error(r, "patterns")


def test_patterns_that_match_none_of_the_files_there_are_said(env, cli, caplog):
    r = cli(*args(env, "--once", "--pattern", "*.tiff"))
    assert r.code == 0, (r.out, r.err)
    said = [rec.getMessage() for rec in caplog.records if "no file there matches" in rec.getMessage()]
    assert len(said) == 1 and "*.tiff" in said[0] and "p0.png" in said[0], caplog.text
    caplog.clear()
    assert cli(*args(env, "--once")).code == 0  # a pattern that takes the file: nothing said
    assert "no file there matches" not in caplog.text


# --- the same bad bytes dropped again -----------------------------------------------------------------
def test_bytes_that_failed_before_go_to_failed_again_not_left_silently(env, cli):
    (env / "in" / "p0.png").unlink()
    (env / "in" / "a.png").write_bytes(b"garbage" * 50)
    assert cli(*args(env, "--once")).code == 1
    (env / "in" / "b.png").write_bytes(b"garbage" * 50)
    r = cli(*args(env, "--once", "--json"))
    assert r.code == 1, (r.out, r.err)
    assert watch_counts(r.out) == {"processed": 0, "failed": 1, "skipped": 0, "unfinished": 0}
    assert not (env / "in" / "b.png").exists() and (env / "in" / "failed" / "b.png").exists()
    assert "a.png" in (env / "in" / "failed" / "b.png.error.json").read_text()
