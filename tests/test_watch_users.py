"""`visionloop watch` as a new user meets it: every mistake is one line naming the file and the
reason with a non-zero exit, never a traceback; a changed workflow runs the files again;
odd file names stay on one line; an older ledger is migrated, a newer one refused."""

from __future__ import annotations

import sqlite3

import pytest
import yaml

from visionloop.watch import Ledger, ledger_path
from watch_helpers import CAPTION_WORKFLOW, png, watch_folder
from json_lines import one, watch_counts


@pytest.fixture
def env(tmp_path):
    watch_folder(tmp_path)
    for i in range(2):
        png(tmp_path / "in" / f"p{i}.png", i)
    return tmp_path


def args(env, *more):
    return ("watch", env / "in", "--workflow", env / "wf.yaml", "--out", env / "out", "--settle", "0.05", *more)


def one_line_error(r, *parts: str) -> None:
    assert r.code == 1, (r.out, r.err)
    assert "Traceback" not in r.err and len(r.err.strip().splitlines()) == 1, r.err
    for part in parts:
        assert part in r.err, r.err


def config_with(env, session_config_file, **rule) -> str:
    config = yaml.safe_load(session_config_file.read_text())
    config["watch"] = [{"name": "inbox", "folder": str(env / "in"), "workflow": str(env / "wf.yaml"),
                        "output": str(env / "described"), "settle": 0.05, **rule}]
    path = env / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


# --- defect 12: ~user that names no home --------------------------------------------------------------
def test_watch_tilde_nosuchuser_is_one_line(env, cli):
    r = cli("watch", "~nosuchuser", "--workflow", env / "wf.yaml", "--out", env / "out", "--once")
    one_line_error(r, "error: watch FOLDER: ~nosuchuser: '~nosuchuser' names no home folder")


@pytest.mark.parametrize("setting", ["folder", "output", "failed"])
def test_config_rule_with_tilde_nosuchuser_is_one_line(env, cli, session_config_file, setting):
    config = config_with(env, session_config_file, **{setting: "~nosuchuser/x"})
    r = cli("--config", config, "watch", "--once")
    one_line_error(r, f"watch rule 'inbox': {setting}: ~nosuchuser/x: '~nosuchuser' names no home folder")


def test_symlink_loops_for_the_folder_or_the_output_are_one_line(env, cli):
    (env / "loop-a").symlink_to(env / "loop-b")
    (env / "loop-b").symlink_to(env / "loop-a")
    r = cli("watch", env / "loop-a", "--workflow", env / "wf.yaml", "--out", env / "out", "--once")
    one_line_error(r, f"error: watch FOLDER: {env / 'loop-a'}: a symbolic link loop")
    r = cli("watch", env / "in", "--workflow", env / "wf.yaml", "--out", env / "loop-b", "--once")
    one_line_error(r, "output: ", f"{env / 'loop-b'}: a symbolic link loop")


# --- defect 14: the CLI side ----------------------------------------------------------------------------
def test_a_failed_file_in_the_way_stops_the_start_with_one_line(env, cli):
    (env / "in" / "failed").write_text("a note, not a folder")
    r = cli(*args(env, "--once"))
    one_line_error(r, f"{env / 'in' / 'failed'}: watch rule 'in': the failed folder is a regular file")
    assert not (env / "out").exists() or not any((env / "out").iterdir())


def test_once_exits_non_zero_when_a_file_is_not_done(env, cli, monkeypatch):
    from visionloop.watch import watcher
    from visionloop.watch.runner import Runner

    monkeypatch.setattr(watcher, "ERROR_RETRIES", 0)  # give up at once (the CLI's backoff is seconds)
    monkeypatch.setattr(Runner, "process", lambda self, rs, ready: (_ for _ in ()).throw(RuntimeError("stuck")))
    r = cli(*args(env, "--once", "--json"))
    assert r.code == 1, r.err
    assert watch_counts(r.out) == {"processed": 0, "failed": 0, "skipped": 0, "unfinished": 2}
    r = cli(*args(env, "--once"))
    assert r.code == 1 and "unfinished 2" in r.out and r.out.count("not processed") == 2


# --- defect 19: the ledger keyed by the rule's fingerprint; --reprocess ------------------------------
def test_another_workflow_on_the_same_folder_runs_every_file_again(env, cli):
    r = cli(*args(env, "--once", "--json"))
    assert watch_counts(r.out)["processed"] == 2
    (env / "wf.yaml").write_text(CAPTION_WORKFLOW.replace("name: alt", "name: alt\ndescription: a new version"))
    r = cli(*args(env, "--once", "--json"))
    assert r.code == 0 and watch_counts(r.out) == {"processed": 2, "failed": 0, "skipped": 0, "unfinished": 0}
    r = cli(*args(env, "--status", "--json"))
    assert one(r.out)["counts"]["done"] == 2  # this workflow's rows, not both versions'


def test_reprocess_runs_each_file_again_once(env, cli):
    assert watch_counts(cli(*args(env, "--once", "--json")).out)["processed"] == 2
    r = cli(*args(env, "--once", "--json", "--reprocess"))
    assert r.code == 0 and watch_counts(r.out) == {"processed": 2, "failed": 0, "skipped": 0, "unfinished": 0}
    assert watch_counts(cli(*args(env, "--once", "--json")).out)["skipped"] == 2
    assert len([p for p in (env / "out").iterdir() if p.is_dir()]) == 4


# --- defect 19: names with control characters stay on one line ----------------------------------------
def test_a_newline_in_a_file_name_stays_on_one_line(env, cli):
    for p in (env / "in").iterdir():
        p.unlink()
    (env / "in" / "bad\nname.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    png(env / "in" / "tab\there.png", 9)
    r = cli(*args(env, "--once"))
    assert r.code == 1
    lines = r.out.splitlines()
    assert len(lines) == 3, r.out  # one per file and the counts
    assert any(line.startswith("[in] 'bad\\nname.png': failed (") for line in lines), r.out
    assert any(line.startswith("[in] 'tab\\there.png': done -> ") for line in lines), r.out
    for line in r.err.splitlines():  # the warnings too: no line begins with the second half of a name
        assert not line.startswith("name.png"), r.err


# --- ledger schema: an older ledger migrated, a newer one refused --------------------------------------
V1_SCHEMA = """
CREATE TABLE files (sha TEXT NOT NULL, rule TEXT NOT NULL, path TEXT NOT NULL, state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, redone INTEGER NOT NULL DEFAULT 0, error TEXT, step TEXT, run_dir TEXT,
    pid INTEGER, updated REAL NOT NULL, PRIMARY KEY (sha, rule));
CREATE TABLE duplicates (path TEXT NOT NULL, rule TEXT NOT NULL, sha TEXT NOT NULL, updated REAL NOT NULL,
    PRIMARY KEY (path, rule, sha));
CREATE TABLE seen (path TEXT NOT NULL, rule TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    PRIMARY KEY (path, rule));
CREATE TABLE outputs (sha TEXT PRIMARY KEY);
"""


def _v1_ledger(env) -> sqlite3.Connection:
    path = ledger_path(env / "out")
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    db.executescript(V1_SCHEMA)
    return db


def test_a_version_1_ledger_is_migrated_and_its_done_files_stay_done(env, cli):
    from visionloop.images import sha256_file

    db = _v1_ledger(env)
    db.execute("INSERT INTO files (sha, rule, path, state, attempts, updated) VALUES (?,?,?,?,?,?)",
               (sha256_file(env / "in" / "p0.png"), "in", str(env / "in" / "p0.png"), "done", 1, 0.0))
    db.commit()
    db.close()
    r = cli(*args(env, "--once", "--json"))
    assert r.code == 0, r.err
    assert watch_counts(r.out) == {"processed": 1, "failed": 0, "skipped": 1, "unfinished": 0}  # p0 was done
    led = Ledger(env / "out", lock=False)
    try:
        assert {row["state"] for row in led.rows()} == {"done"} and len(led.rows()) == 2
        assert len({row["fp"] for row in led.rows()}) == 1  # the legacy row took the rule's fingerprint
    finally:
        led.close()
    with sqlite3.connect(ledger_path(env / "out")) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 2


def test_a_ledger_from_a_newer_version_is_refused(env, cli):
    db = _v1_ledger(env)
    db.execute("PRAGMA user_version = 99")
    db.commit()
    db.close()
    r = cli(*args(env, "--once"))
    one_line_error(r, f"{ledger_path(env / 'out')}: this ledger is written by a newer visionloop (ledger schema 99")
    with sqlite3.connect(ledger_path(env / "out")) as db:  # left as it was
        assert db.execute("PRAGMA user_version").fetchone()[0] == 99
