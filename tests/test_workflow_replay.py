"""`visionloop replay` runs what the manifest recorded: its profile, models, device and dtype,
whatever the current config selects; what it cannot honour is one line before anything runs."""

import json
from pathlib import Path

import pytest
import yaml
from json_lines import one

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def recorded(cli, tmp_path):
    """A poster run recorded with the tiny profile (the session config): its manifest."""
    result = cli("run", "poster", "--input", "subject=a lighthouse", "--input", "seed=5",
                 "--out", tmp_path / "runs", "--json")
    assert result.code == 0, result.err
    manifest = Path(one(result.out)["manifest"])
    assert json.loads(manifest.read_text())["environment"]["profile"] == "tiny"
    return manifest


@pytest.fixture
def default_config(tiny_cache, tmp_path):
    """A config whose active profile is `default` (real models, not cached here), with the
    session's tiny cache and one extra tiny profile that draws with fewer steps."""
    path = tmp_path / "default.yaml"
    path.write_text(yaml.safe_dump({
        "profile": "default", "cache_dir": str(tiny_cache), "output": str(tmp_path / "out"),
        "profiles": {"mini": {"vision": {"model": "tiny", "max_new_tokens": 24},
                              "diffusion": {"model": "tiny", "steps": 2, "width": 64, "height": 64}}}}))
    return path


def _edit(manifest: Path, change) -> Path:
    data = json.loads(manifest.read_text())
    change(data["environment"])
    manifest.write_text(json.dumps(data))
    return manifest


def _one_line(result, manifest: Path) -> str:
    assert result.code == 1 and result.out == ""
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.err, result.err
    assert str(manifest) in lines[0]
    return lines[0]


def test_tiny_manifest_replays_identically_under_the_default_profile(cli, recorded, default_config, tmp_path):
    again = cli("--config", default_config, "replay", recorded, "--out", tmp_path / "again", "--json")
    assert again.code == 0, again.err
    assert "warning" not in again.err
    report = one(again.out)
    assert report["identical"] and report["status"] == "ok" and report["differences"] == []
    env = json.loads(Path(report["manifest"]).read_text())["environment"]
    assert env["profile"] == "tiny" and env["models"]["diffusion"]["model"] == "tiny"


def test_older_manifest_without_profile_settings_still_replays(cli, recorded, default_config, tmp_path):
    _edit(recorded, lambda env: [env.pop(k, None) for k in ("profile_settings", "settings")])
    again = cli("--config", default_config, "replay", recorded, "--out", tmp_path / "again")
    assert again.code == 0, again.err
    assert again.out.startswith("identical: all 2 steps")


def _missing_model(env):
    env["models"]["diffusion"]["model"] = "nobody/not-a-cached-model"
    if "profile_settings" in env:
        env["profile_settings"]["diffusion"]["model"] = "nobody/not-a-cached-model"


def _unknown_home(env):
    env["models"]["diffusion"]["model"] = "~nosuchuserzz/model"
    if "profile_settings" in env:
        env["profile_settings"]["diffusion"]["model"] = "~nosuchuserzz/model"


@pytest.mark.parametrize("change, reason", [
    (_missing_model, "diffusion.model 'nobody/not-a-cached-model', which is not in the local cache"),
    (_unknown_home, "diffusion.model '~nosuchuserzz/model', which is not there"),
    (lambda env: env.update(device="cuda:7"), "device 'cuda:7'"),
    (lambda env: [env.update(profile="gone"), env.pop("profile_settings", None), env.update(models={})],
     "profile 'gone' is not in the current config"),
])
def test_what_cannot_be_honoured_is_one_line_before_any_folder(cli, recorded, default_config, tmp_path,
                                                                change, reason):
    _edit(recorded, change)
    out = tmp_path / "again"
    line = _one_line(cli("--config", default_config, "replay", recorded, "--out", out), recorded)
    assert reason in line
    assert not out.exists() or not any(out.iterdir())


def test_profile_flag_overrides_with_a_warning(cli, recorded, default_config, tmp_path):
    again = cli("--config", default_config, "--profile", "mini", "replay", recorded, "--out", tmp_path / "again")
    assert "replaying with profile mini, not the recorded tiny: results may differ" in again.err
    assert "run folder:" in again.out  # it ran, with the profile asked for
    env = json.loads(next((tmp_path / "again").glob("*/manifest.json")).read_text())["environment"]
    assert env["profile"] == "mini"
