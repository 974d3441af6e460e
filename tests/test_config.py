"""Config lookup, merging, validation errors with file:line, profiles and env overrides."""

from pathlib import Path

import pytest

from visionloop.config import load_config
from visionloop.errors import ConfigError, UsageError

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path, text, name="c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_shipped_config_equals_builtin_defaults(monkeypatch, tmp_path):
    monkeypatch.delenv("VISIONLOOP_CONFIG")
    shipped = load_config(str(ROOT / "config.yaml"))
    builtin = load_config(None)  # cwd is an empty tmp folder: no ./config.yaml
    assert builtin.source is None
    assert shipped.model_dump(exclude={"workflows"}) == builtin.model_dump(exclude={"workflows"})
    assert shipped.workflows == str(ROOT / "workflows") and builtin.workflows == "workflows"
    assert shipped.active.vision.model == "llava-hf/llava-1.5-7b-hf"


def test_one_section_file_is_merged_over_defaults(tmp_path):
    cfg = load_config(str(write(tmp_path, "images:\n  max_pixels: 1000\n")))
    assert cfg.images.max_pixels == 1000
    assert cfg.images.max_file_mb == 200  # default kept
    assert cfg.profile == "default" and "tiny" in cfg.profiles


def test_profile_override_merges_one_model_line(tmp_path):
    path = write(tmp_path, "profiles:\n  default:\n    vision:\n      model: llava-hf/llava-v1.6-mistral-7b-hf\n")
    cfg = load_config(str(path))
    assert cfg.active.vision.model == "llava-hf/llava-v1.6-mistral-7b-hf"
    assert cfg.active.vision.max_new_tokens == 256
    assert cfg.active.diffusion.model == "stable-diffusion-v1-5/stable-diffusion-v1-5"


def test_unknown_key_names_file_line_and_suggestion(tmp_path):
    path = write(tmp_path, "images:\n  max_pixels: 10\n  max_pixel: 5\n")
    with pytest.raises(ConfigError) as err:
        load_config(str(path))
    msg = str(err.value)
    assert msg.startswith(f"{path}:3: images.max_pixel: unknown key 'max_pixel'")
    assert "did you mean 'max_pixels'" in msg


def test_unknown_nested_profile_key(tmp_path):
    path = write(tmp_path, "profiles:\n  mine:\n    vision:\n      modle: x\n")
    with pytest.raises(ConfigError, match=r":4: profiles.mine.vision.modle: unknown key 'modle' \(did you mean 'model'\?\)"):
        load_config(str(path))


def test_mistyped_value_names_line(tmp_path):
    path = write(tmp_path, "device: auto\nimages:\n  max_pixels: lots\n")
    with pytest.raises(ConfigError, match=r":3: images.max_pixels: .*integer.*'lots'"):
        load_config(str(path))


def test_yaml_syntax_error_and_duplicate_key(tmp_path):
    with pytest.raises(ConfigError, match=r"c.yaml:2: "):
        load_config(str(write(tmp_path, "device: cpu\n  bad: x\n")))
    with pytest.raises(ConfigError, match=r"d.yaml:2: duplicate key 'device' \(first on line 1\)"):
        load_config(str(write(tmp_path, "device: cpu\ndevice: auto\n", "d.yaml")))


def test_python_tag_is_refused(tmp_path):
    path = write(tmp_path, "output: !!python/object/apply:os.system ['touch pwned']\n")
    with pytest.raises(ConfigError, match="tag not allowed"):
        load_config(str(path))
    assert not (tmp_path / "pwned").exists()


def test_missing_config_and_unknown_profile(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml: config file not found"):
        load_config(str(tmp_path / "nope.yaml"))
    with pytest.raises(UsageError, match=r"^--profile 'huge': no such profile \(profiles: default, tiny\)$"):
        load_config(str(write(tmp_path, "{}\n")), profile="huge")


def test_lookup_order(tmp_path, monkeypatch):
    env_file = write(tmp_path, "output: from-env\n", "env.yaml")
    local = write(tmp_path, "output: from-cwd\n", "config.yaml")
    monkeypatch.setenv("VISIONLOOP_CONFIG", str(env_file))
    assert load_config().output == "from-env"
    assert load_config(str(local)).output == "from-cwd"  # --config wins
    monkeypatch.delenv("VISIONLOOP_CONFIG")
    assert load_config().output == "from-cwd"  # ./config.yaml


def test_env_overrides(tmp_path, monkeypatch):
    monkeypatch.setenv("VISIONLOOP_PROFILE", "tiny")
    monkeypatch.setenv("VISIONLOOP_DEVICE", "cpu")
    cfg = load_config(str(write(tmp_path, "{}\n")))
    assert cfg.profile == "tiny" and cfg.device == "cpu"
    assert load_config(str(write(tmp_path, "{}\n")), profile="default").profile == "default"


def test_bad_config_from_cli_is_one_line(cli, tmp_path):
    path = write(tmp_path, "imagez: {}\n")
    result = cli("--config", path, "tools")
    assert result.code == 1
    assert result.err.strip() == f"error: {path}:1: imagez: unknown key 'imagez' (did you mean 'images'?)"


def test_environment_override_is_named_as_the_source(tmp_path, monkeypatch):
    monkeypatch.setenv("VISIONLOOP_DEVICE", "gpu")
    with pytest.raises(ConfigError, match=r"^\$VISIONLOOP_DEVICE: device: must be auto, cpu, mps, cuda or cuda:N \(got 'gpu'\)$"):
        load_config(str(write(tmp_path, "{}\n")))


def test_folders_in_a_config_file_are_relative_to_it(tmp_path, monkeypatch):
    home = tmp_path / "vl"
    home.mkdir()
    path = write(home, "workflows: flows\nplugins:\n  paths: [mine, /abs/p]\ncache_dir: ~/c\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_config(str(path))
    assert cfg.workflows == str(home / "flows")
    assert cfg.plugins.paths == [str(home / "mine"), "/abs/p"]
    assert cfg.cache_dir == "~/c"
    assert cfg.output == "visionloop-out"  # outputs stay relative to where the command runs


def test_device_and_dtype_flags_override_environment_and_file(tmp_path, monkeypatch, cli, example_image):
    monkeypatch.setenv("VISIONLOOP_DEVICE", "cuda")
    cfg = load_config(str(write(tmp_path, "device: mps\ndtype: float16\n")), device="cpu", dtype="float32")
    assert (cfg.device, cfg.dtype) == ("cpu", "float32")
    with pytest.raises(UsageError, match=r"^--dtype 'float8': must be auto, float32, float16 or bfloat16$"):
        load_config(str(write(tmp_path, "{}\n")), dtype="float8")
    result = cli("caption", example_image, "--device", "cpu", "--dtype", "float32", "--json")
    assert result.code == 0, result.err
    bad = cli("caption", example_image, "--device", "gpu")
    assert bad.code == 2 and bad.err == "error: --device 'gpu': must be auto, cpu, mps, cuda or cuda:N\n"


def test_config_from_dev_zero_is_refused_quickly_in_one_line(tmp_path):
    """Never read without a bound: under a 1.5 GB address-space cap, reading /dev/zero to the
    end would die with a MemoryError traceback."""
    import resource
    import time

    from conftest import run_subprocess

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (1_500_000_000, 1_500_000_000))

    started = time.monotonic()
    proc = run_subprocess("--config", "/dev/zero", "tools", preexec_fn=cap)
    assert proc.returncode == 1, proc.stderr[-500:]
    assert proc.stderr.strip() == "error: /dev/zero: is a device, not a regular file"
    assert time.monotonic() - started < 60


def test_config_read_stops_at_the_limit_whatever_the_file_reports(tmp_path, monkeypatch):
    from visionloop import yamlsource

    big = tmp_path / "big.yaml"
    big.write_text("# padding\n" * 200_000)  # 2 MB of comments: valid YAML, over the limit
    with pytest.raises(ConfigError, match=rf"^{big}: file is larger than 1000 kB$"):
        load_config(str(big))
    # /proc files report a size of 0: only the bytes actually read count
    monkeypatch.setattr(yamlsource, "MAX_BYTES", 40)
    with pytest.raises(ConfigError, match=r"^/proc/self/status: file is larger than 0 kB$"):
        load_config("/proc/self/status")


def test_config_folder_fifo_unreadable_are_one_line_each(tmp_path, monkeypatch, cli):
    import os

    folder = tmp_path / "conf.d"
    folder.mkdir()
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)  # no writer: opening it for reading must not hang
    locked = write(tmp_path, "device: cpu\n", "locked.yaml")
    real_open = os.open

    def deny(path, *args, **kwargs):  # the tests run as root, whom chmod 000 does not stop
        if str(path) == str(locked):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", deny)
    for path, reason in ((folder, "is a folder, not a file"), (fifo, "is a named pipe (FIFO), not a regular file"),
                         (locked, "permission denied")):
        result = cli("--config", path, "tools")
        assert result.code == 1 and result.err == f"error: {path}: {reason}\n", result.err


def test_environment_variables_are_named_as_the_source(tmp_path, monkeypatch):
    monkeypatch.setenv("VISIONLOOP_PROFILE", "huge")
    with pytest.raises(ConfigError,
                       match=r"^\$VISIONLOOP_PROFILE: unknown profile 'huge' \(profiles: default, tiny\)$"):
        load_config(str(write(tmp_path, "{}\n")))
    with pytest.raises(UsageError, match=r"^--profile 'big': no such profile \(profiles: default, tiny\)$"):
        load_config(str(write(tmp_path, "{}\n")), profile="big")
    monkeypatch.delenv("VISIONLOOP_PROFILE")
    path = write(tmp_path, "device: cpu\nprofile: mine\n")
    with pytest.raises(ConfigError, match=rf"^{path}:2: profile: unknown profile 'mine'"):
        load_config(str(path))
    monkeypatch.setenv("VISIONLOOP_DTYPE", "float8")
    with pytest.raises(ConfigError, match=r"^\$VISIONLOOP_DTYPE: dtype: must be auto, float32, float16 or bfloat16 "
                                          r"\(got 'float8'\)$"):
        load_config(str(write(tmp_path, "{}\n")))
    monkeypatch.delenv("VISIONLOOP_DTYPE")
    monkeypatch.setenv("VISIONLOOP_CONFIG", str(tmp_path / "gone.yaml"))
    with pytest.raises(ConfigError, match=rf"^{tmp_path / 'gone.yaml'}: config file not found "
                                          r"\(named by \$VISIONLOOP_CONFIG\)$"):
        load_config()


@pytest.mark.parametrize("text, loc", [
    ("output: ''\n", "output"), ("workflows: '  '\n", "workflows"),
    ("profiles:\n  mine:\n    vision:\n      model: ''\n", "profiles.mine.vision.model"),
    ("profiles:\n  mine:\n    diffusion:\n      loras: [{path: ' '}]\n", "profiles.mine.diffusion.loras[0].path"),
])
def test_blank_paths_and_model_names_are_refused(tmp_path, text, loc):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(str(path))
    line = text.count("\n")
    assert str(err.value).startswith(f"{path}:{line}: {loc}: must not be empty (got ")


@pytest.mark.parametrize("args, line", [
    (["--dtype", "float17"], "--dtype 'float17': must be auto, float32, float16 or bfloat16"),
    (["--device", "cuda9x"], "--device 'cuda9x': must be auto, cpu, mps, cuda or cuda:N"),
    (["--profile", "tnyi"], "--profile 'tnyi': no such profile (did you mean 'tiny'? profiles: default, mine, tiny)"),
    (["--profile", "zzz"], "--profile 'zzz': no such profile (profiles: default, mine, tiny)"),
])
def test_a_bad_global_flag_is_a_usage_error_naming_flag_value_and_choices(cli, tmp_path, args, line):
    path = write(tmp_path, "profiles:\n  mine: {}\n")
    for argv in (["--config", path, *args, "tools"], ["--config", path, "tools", *args]):
        result = cli(*argv)
        assert (result.code, result.out, result.err) == (2, "", f"error: {line}\n"), argv


def test_the_same_bad_values_from_the_file_or_environment_are_config_errors(cli, tmp_path, monkeypatch):
    path = write(tmp_path, "device: cpu\nprofile: tnyi\n")
    result = cli("--config", path, "tools")
    assert (result.code, result.err) == (
        1, f"error: {path}:2: profile: unknown profile 'tnyi' (did you mean 'tiny'? profiles: default, tiny)\n")
    monkeypatch.setenv("VISIONLOOP_DTYPE", "float17")
    result = cli("--config", write(tmp_path, "{}\n", "e.yaml"), "tools")
    assert (result.code, result.err) == (
        1, "error: $VISIONLOOP_DTYPE: dtype: must be auto, float32, float16 or bfloat16 (got 'float17')\n")


def test_every_config_problem_is_shown_one_a_line(cli, tmp_path):
    path = write(tmp_path, "device: gpu\nimages:\n  max_pixels: lots\nwatch: []\nocr:\n  engin: x\n")
    expected = [f"{path}:1: device: must be auto, cpu, mps, cuda or cuda:N (got 'gpu')",
                f"{path}:3: images.max_pixels: Input should be a valid integer, unable to parse string as an "
                "integer (got 'lots')",
                f"{path}:6: ocr.engin: unknown key 'engin' (did you mean 'engine'?)"]
    with pytest.raises(ConfigError) as err:
        load_config(str(path))
    assert str(err.value).splitlines() == expected
    result = cli("--config", path, "tools")
    assert result.code == 1 and result.out == ""
    assert result.err.splitlines() == ["error: " + expected[0], *expected[1:]]
