"""What every model load shares (`agent/models/loading.py`): `offline: true` means exactly what
`HF_HUB_OFFLINE=1` means, whatever was imported first, and `trust_remote_code` takes only a
pinned commit sha."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from visionloop.errors import ModelError

#: Run in a child process so that the import order is real. Every socket connection is
#: recorded and refused; the script prints what it saw as JSON on its last line.
CHILD = r"""
import json, socket, sys
attempts = []
def refuse(*args, **kwargs):
    attempts.append(repr(args[:2])[:200])
    raise OSError("test: network refused")
socket.create_connection = refuse
socket.socket.connect = refuse
socket.socket.connect_ex = refuse
if sys.argv[1] == "hub-first":  # the hub and both model libraries imported before the config is read
    import huggingface_hub, transformers, diffusers  # noqa: F401
from visionloop.cli.app import main
code = main(["--config", sys.argv[2], *sys.argv[3:]])
import huggingface_hub.constants as hc
mods = {n: getattr(m, "HF_HUB_OFFLINE") for n, m in list(sys.modules.items())
        if n.split(".")[0] in ("huggingface_hub", "diffusers", "transformers")
        and isinstance(getattr(m, "HF_HUB_OFFLINE", None), bool)}
print(json.dumps({"code": code, "attempts": attempts, "offline": hc.is_offline_mode(), "modules": mods}))
"""


def run_child(order: str, cfg, *args, env_extra=None) -> tuple[dict, str]:
    import os

    from conftest import ROOT

    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(HF_HOME=str(cfg.parent / "hf"), HF_ENDPOINT="http://127.0.0.1:9", **(env_extra or {}))
    proc = subprocess.run([sys.executable, "-c", CHILD, order, str(cfg), *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=300)
    assert proc.stdout.strip(), proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


@pytest.mark.parametrize("order,tool", [("config-first", "caption"), ("hub-first", "draw")])
def test_offline_config_opens_no_socket(tmp_path, example_image, order, tool):
    """`offline: true`, no HF_HUB_OFFLINE, a model that is not cached: one line, no connection,
    and huggingface_hub (and every module holding its own copy of the flag) is offline too."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("profile: default\noffline: true\n")
    args = [example_image] if tool == "caption" else ["a cat"]
    seen, err = run_child(order, cfg, tool, *args)
    assert seen["attempts"] == [], seen["attempts"]
    assert seen["code"] == 1 and seen["offline"] is True
    assert seen["modules"] and all(seen["modules"].values()), seen["modules"]
    line = err.strip()
    assert "\n" not in line and "Traceback" not in line, err
    assert "not found in the local cache" in line and "(offline mode)" in line


def test_offline_applies_to_an_already_imported_hub(monkeypatch):
    """`apply_offline` flips the flag in modules that copied it at import (diffusers does)."""
    import huggingface_hub.constants as hc
    from diffusers.utils import hub_utils

    from visionloop.models.loading import apply_offline

    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub_utils, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    apply_offline(True)
    import os

    assert os.environ["HF_HUB_OFFLINE"] == "1" and hc.is_offline_mode() and hub_utils.HF_HUB_OFFLINE is True


# --- trust_remote_code needs a pinned commit ---------------------------------------------------------

SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.parametrize("revision", [None, "main", "v1.0", "0123456", SHA[:-1] + "g", SHA + "0", " " + SHA])
def test_trust_remote_code_refuses_anything_but_a_commit_sha(revision):
    from visionloop.models.loading import hub_kwargs

    with pytest.raises(ModelError) as info:
        hub_kwargs(revision, False, True, key="profiles.default.vision.revision")
    msg = str(info.value)
    assert "\n" not in msg and "profiles.default.vision.revision" in msg and "40" in msg and "trust_remote_code" in msg


def test_trust_remote_code_with_a_sha_is_passed_on():
    from visionloop.models.loading import hub_kwargs

    kwargs = hub_kwargs(SHA, False, True, key="k")
    assert kwargs["trust_remote_code"] is True and kwargs["revision"] == SHA
    assert hub_kwargs(SHA.upper(), False, True, key="k")["revision"] == SHA.upper()
    assert "trust_remote_code" not in hub_kwargs("main", False, False, key="k")  # a branch is fine without it


def test_trust_remote_code_with_a_branch_from_the_cli(cli, tmp_path, example_image):
    """Refused before anything is built or loaded (an empty cache folder stays empty)."""
    cfg = tmp_path / "c.yaml"
    (tmp_path / "cache").mkdir()
    cfg.write_text(f"profile: tiny\ncache_dir: {tmp_path / 'cache'}\ntrust_remote_code: true\n"
                   "profiles:\n  tiny:\n    vision:\n      revision: main\n")
    result = cli("--config", cfg, "caption", example_image)
    assert result.code == 1 and result.err.count("\n") == 1 and "Traceback" not in result.err
    assert "profiles.tiny.vision.revision" in result.err and "'main'" in result.err
    assert "40 hex" in result.err and result.err.startswith(f"error: {cfg}: ")
    assert list((tmp_path / "cache").iterdir()) == []


# --- a model path that is not a model of the right kind ------------------------------------------------

@pytest.mark.parametrize("kind", ["file", "sd-folder", "llava-folder", "empty", "bad-id", "three-parts"])
def test_wrong_model_paths_get_one_line_naming_the_key(cli, tmp_path, example_image, tiny_cache, kind):
    """Each wrong `model` gets one line naming the path, the reason and the config key, and
    nothing reaches from_pretrained (which would say 'Repo id must be in the form ...')."""
    from visionloop.models.tiny import tiny_model_path

    tool, section = ("caption", "vision") if kind != "llava-folder" else ("draw", "diffusion")
    empty = tmp_path / "empty"
    empty.mkdir()
    model, reason = {
        "file": (example_image, "is a file, not a model folder"),
        "sd-folder": (tiny_model_path("sd", tiny_cache),
                      "holds a diffusers pipeline (model_index.json), not a transformers vision-language model"),
        "llava-folder": (tiny_model_path("llava", tiny_cache),
                         "holds a single model (config.json), not a diffusers pipeline (model_index.json)"),
        "empty": (empty, "no config.json in this folder, so it is not a transformers vision-language model"),
        "bad-id": ("not a/valid id!!", "no such folder, and not a hub model id of the form 'namespace/name'"),
        "three-parts": ("a/b/c", "no such folder, and not a hub model id of the form 'namespace/name'"),
    }[kind]
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"profile: p\ncache_dir: {tiny_cache}\nprofiles:\n  p:\n"
                   f"    {section}: {{model: '{model}'}}\n")
    result = cli("--config", cfg, tool, example_image if tool == "caption" else "a cat")
    assert result.code == 1 and result.out == "" and result.err.count("\n") == 1, result.err
    assert result.err.startswith(f"error: {model}: {reason}")
    assert result.err.rstrip().endswith(f"(check profiles.p.{section}.model in {cfg})")


def test_wrong_inpaint_model_names_its_own_key(cli, tmp_path, example_image, tiny_cache):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"profile: p\ncache_dir: {tiny_cache}\nprofiles:\n  p:\n"
                   f"    diffusion: {{model: tiny, inpaint_model: '{example_image}', steps: 2, width: 64, height: 64}}\n")
    result = cli("--config", cfg, "draw", "a cat")
    assert result.code == 1 and result.err.count("\n") == 1
    assert result.err.startswith(f"error: {example_image}: is a file, not a model folder "
                                 f"(check profiles.p.diffusion.inpaint_model in {cfg})")


# --- LoRA paths ------------------------------------------------------------------------------------

def diffusion_backend(tiny_config, **changes):
    """A separate diffusion backend on the tiny model with some profile settings changed."""
    from visionloop.models.cache import ModelCache

    config = tiny_config.model_copy(deep=True)
    for key, value in changes.items():
        setattr(config.profiles[config.profile].diffusion, key, value)
    return ModelCache(config).diffusion()


@pytest.mark.needs("peft")
@pytest.mark.parametrize("kind", ["missing", "missing-name", "pickle", "empty-folder", "damaged", "bad-id"])
def test_a_wrong_lora_path_is_one_line_naming_the_key(tiny_config, tmp_path, kind):
    """Nothing reaches the hub or `torch.load`: a missing path, a pickle file, a folder with no
    safetensors, a damaged file and a malformed hub id each get their own one-line reason."""
    from visionloop.config import Lora

    (tmp_path / "empty").mkdir()
    (tmp_path / "style.bin").write_bytes(b"\x80\x02junk")
    (tmp_path / "broken.safetensors").write_bytes(b"junk")
    path, reason = {"missing": (str(tmp_path / "nope"), "LoRA file not found"),
                    "missing-name": ("style.safetensors", "LoRA file not found"),
                    "pickle": (str(tmp_path / "style.bin"), "not a .safetensors file; refusing pickle weights"),
                    "empty-folder": (str(tmp_path / "empty"), "no .safetensors file in this folder"),
                    "damaged": (str(tmp_path / "broken.safetensors"), "damaged or not a safetensors file"),
                    "bad-id": ("my lora!", "not a hub model id")}[kind]
    with pytest.raises(ModelError) as info:
        diffusion_backend(tiny_config, loras=[Lora(path=path)])
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(f"{path}: ") and reason in msg
    if kind != "damaged":  # found by its contents, not by the config
        assert msg.endswith(f"(check profiles.tiny.diffusion.loras[0].path in {tiny_config.source})")


def test_pickle_only_model_is_refused(tiny_config, tmp_path):
    """A model folder without safetensors weights is refused with a one-line message."""
    import shutil

    from visionloop.models.tiny import tiny_model_path

    src = tiny_model_path("sd", tiny_config.cache_path)
    dst = tmp_path / "pickled"
    shutil.copytree(src, dst)
    for f in dst.rglob("*.safetensors"):
        f.rename(f.with_suffix(".bin"))
    with pytest.raises(ModelError) as info:
        diffusion_backend(tiny_config, model=str(dst))
    assert "\n" not in str(info.value) and str(dst) in str(info.value)
    assert "safetensors" in str(info.value)


# --- third-party warnings while loading ---------------------------------------------------------

def test_third_party_warnings_while_loading_are_hidden_unless_verbose(caplog):
    import logging
    import warnings

    from visionloop.models.loading import quiet_loading

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        caplog.set_level(logging.WARNING, logger="visionloop")
        with quiet_loading():
            warnings.warn("local_dir_use_symlinks is deprecated", UserWarning)
        assert seen == []  # hidden at the default level
        caplog.set_level(logging.INFO, logger="visionloop")  # -v
        with quiet_loading():
            warnings.warn("local_dir_use_symlinks is deprecated", UserWarning)
        assert [str(w.message) for w in seen] == ["local_dir_use_symlinks is deprecated"]
