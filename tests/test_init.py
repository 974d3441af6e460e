"""`visionloop init`: the commented default config, written where the lookup finds it, never
over a file the user has (unless --force, keeping the old one)."""

from __future__ import annotations

import json
from pathlib import Path

import platformdirs

from conftest import ROOT


def user_config() -> Path:
    return Path(platformdirs.user_config_dir("visionloop")) / "config.yaml"  # XDG_CONFIG_HOME: the test's


def test_init_writes_the_commented_config_that_the_lookup_then_finds(cli, tmp_path, monkeypatch):
    from visionloop.config import find_config, load_config

    monkeypatch.chdir(tmp_path)  # an empty folder: no ./config.yaml
    for name in ("VISIONLOOP_CONFIG", "VISIONLOOP_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    result = cli("--profile", "tiny", "init")
    assert result.code == 0, result.err
    path = user_config()
    assert result.out == f"wrote {path.resolve()}\n"
    text = path.read_text()
    # the shipped file, byte for byte, but for the profile asked for
    assert text == (ROOT / "config.yaml").read_text().replace("\nprofile: default\n", "\nprofile: tiny\n", 1)
    assert "# visionloop configuration" in text
    assert find_config() == path
    assert load_config(None).profile == "tiny"


def test_init_never_overwrites_without_force_and_keeps_the_old_file(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = user_config()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("profile: tiny\n")
    result = cli("init")
    assert result.code == 1
    assert result.err == f"error: {path}: already exists; nothing written (--force replaces it, keeping the old one as config.yaml.bak)\n"
    assert path.read_text() == "profile: tiny\n" and result.out == ""
    result = cli("init", "--force")
    assert result.code == 0, result.err
    assert path.with_name("config.yaml.bak").read_text() == "profile: tiny\n"
    assert path.read_text() == (ROOT / "config.yaml").read_text()
    assert "the old one is" in result.out


def test_init_here_to_and_json(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli("init", "--here", "-q").code == 0
    assert (tmp_path / "config.yaml").read_text() == (ROOT / "config.yaml").read_text()
    result = cli("init", "--to", tmp_path / "sub" / "vl.yaml", "--json")
    assert result.code == 0, result.err
    record, summary = map(json.loads, result.out.splitlines())
    assert record == {"file": str(tmp_path / "sub" / "vl.yaml"), "status": "created", "backup": None, "error": None}
    assert summary == {"summary": {"command": "init", "results": 1, "ok": 1, "failed": 0, "exit": 0, "error": None}}
    result = cli("init", "--to", tmp_path / "sub" / "vl.yaml", "--json")  # exists now: the error in the summary
    [summary] = map(json.loads, result.out.splitlines())
    assert result.code == 1 and "already exists" in summary["summary"]["error"]
    assert summary["summary"]["exit"] == 1 and result.err.startswith("error: ")
    result = cli("init", "--to", tmp_path)  # a folder
    assert result.code == 2 and result.err == f"error: {tmp_path}: is a folder; give a file name with --to\n"
    assert cli("init", "--here", "--to", "x.yaml").code == 2  # one place at a time
