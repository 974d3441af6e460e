"""Where workflows are found: `workflows` lists exactly the folders `run NAME` searches (the
config's, the user's, the bundled examples). The wheel: tests/test_wheel.py."""

import shutil
from pathlib import Path

import pytest
import yaml
from json_lines import one, results

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "workflows").glob("*.yaml"))


@pytest.fixture
def setup(tmp_path, monkeypatch, tiny_config):
    """An empty folder to run in, outside the repository, a config whose `workflows:` folder is
    empty, and an empty user config folder."""
    here = tmp_path / "elsewhere"
    flows = tmp_path / "flows"
    user = tmp_path / "xdg"
    for folder in (here, flows, user):
        folder.mkdir()
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"profile": "tiny", "cache_dir": str(tiny_config.cache_path),
                                      "workflows": str(flows)}))
    monkeypatch.setenv("VISIONLOOP_CONFIG", str(config))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(user))
    monkeypatch.chdir(here)
    return {"flows": flows, "user": user / "visionloop" / "workflows", "config": config}


def listing(cli):
    result = cli("workflows", "--json")
    assert result.code == 0, result.err
    return results(result.out)


def planned_file(cli, name, image):
    result = cli("run", name, "--input", f"image={image}", "--dry-run", "--json")
    assert result.code == 0, result.err
    return one(result.out)["file"]


def test_empty_config_folder_lists_the_bundled_examples_that_run_finds(cli, setup, example_image):
    entries = listing(cli)
    assert sorted(e["name"] for e in entries) == [p.stem for p in EXAMPLES]
    assert all(e["source"] == "bundled" and e["valid"] and e["shadowed_by"] is None for e in entries)
    alt = next(e for e in entries if e["name"] == "alt-text")
    assert Path(planned_file(cli, "alt-text", example_image)) == Path(alt["file"]).resolve()
    text = cli("workflows")
    assert text.code == 0 and "alt-text  " in text.out and "[bundled]" in text.out


def test_an_earlier_folder_shadows_a_later_one_and_the_listing_says_so(cli, setup, example_image):
    mine = setup["flows"] / "alt-text.yaml"
    mine.write_text((ROOT / "workflows" / "alt-text.yaml").read_text().replace(
        "description:", "description: MINE", 1))
    setup["user"].mkdir(parents=True)
    shutil.copy(ROOT / "workflows" / "alt-text.yaml", setup["user"] / "alt-text.yml")
    shutil.copy(ROOT / "workflows" / "poster.yaml", setup["user"] / "my-poster.yaml")
    entries = [e for e in listing(cli) if e["name"] in ("alt-text", "my-poster")]
    assert [(e["name"], e["source"], e["shadowed_by"]) for e in entries] == [
        ("alt-text", "config", None),
        ("alt-text", "user", str(mine)),
        ("my-poster", "user", None),
        ("alt-text", "bundled", str(mine)),
    ]
    assert Path(planned_file(cli, "alt-text", example_image)) == mine.resolve()
    text = cli("workflows").out
    assert f"[bundled, shadowed by {mine}]" in text and "[config]" in text and "[user]" in text
    assert "MINE" in text
    result = cli("run", "my-poster", "--input", "subject=a boat", "--dry-run", "--json")
    assert result.code == 0, result.err
    assert one(result.out)["file"] == str((setup["user"] / "my-poster.yaml").resolve())


def test_the_folders_in_search_order_each_once(setup, tmp_path):
    from visionloop.config import load_config
    from visionloop.workflows.library import bundled_folder, workflow_folders

    config = load_config(str(setup["config"]))
    folders = workflow_folders(config)
    assert [(f.path, f.source) for f in folders] == [
        (setup["flows"], "config"), (setup["user"], "user"), (bundled_folder(), "bundled")]
    same = tmp_path / "same.yaml"
    same.write_text(f"profile: tiny\nworkflows: {ROOT / 'workflows'}\n")
    assert [f.source for f in workflow_folders(load_config(str(same)))] == ["config", "user"]


def test_nothing_anywhere_names_every_folder_searched(cli, setup, monkeypatch):
    import visionloop.workflows.library as library

    monkeypatch.setattr(library, "bundled_folder", lambda: None)
    result = cli("workflows")
    assert result.code == 0 and f"no workflows in {setup['flows']}, {setup['user']}" in result.err
    result = cli("run", "alt-text", "--dry-run")
    assert result.code != 0 and f"{setup['flows']}, {setup['user']})" in result.err
