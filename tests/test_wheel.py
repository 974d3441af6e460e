"""The wheel: it carries the example workflows, the commented config and every source file under
our own import names, and, installed into a fresh virtual environment, it runs from an empty
folder (`workflows` lists the bundled examples; `run describe-and-redraw` runs on the tiny models)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from conftest import EXAMPLE, ROOT

EXAMPLES = sorted((ROOT / "workflows").glob("*.yaml"))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Built offline from a copy of the source (nothing written into the checkout)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("agent", "plugins", "workflows"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md", "config.yaml"):
        shutil.copy(ROOT / name, src / name)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation",
                            "--no-index", "-q", "-w", str(tmp / "out")], cwd=src, capture_output=True, text=True,
                           timeout=300)
    assert built.returncode == 0, built.stderr
    [found] = (tmp / "out").glob("*.whl")
    return found


def test_the_wheel_carries_the_examples_the_config_and_every_source_file(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        for path in [*EXAMPLES, ROOT / "workflows" / "schema.json"]:
            assert z.read(f"visionloop/examples/{path.name}") == path.read_bytes()
        assert z.read("visionloop/config.yaml") == (ROOT / "config.yaml").read_bytes()
        entry_points = z.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    # the packages are listed by name in pyproject.toml: none of the source may be left out,
    # and it installs under names that are ours (agent/ as visionloop, plugins/ as visionloop_plugins)
    renamed = {"agent": "visionloop", "plugins": "visionloop_plugins"}
    source = {f"{renamed[d]}/{p.relative_to(ROOT / d).as_posix()}" for d in renamed
              for p in (ROOT / d).rglob("*.py") if "__pycache__" not in p.parts}
    assert source <= names, sorted(source - names)
    assert not {n for n in names if n.split("/")[0] in ("agent", "plugins")}
    assert "visionloop = visionloop.cli.app:main" in entry_points
    assert "see = visionloop_plugins.see" in entry_points


def test_the_installed_wheel_runs_from_an_empty_folder(wheel, tmp_path):
    """A fresh venv holding only the wheel; the dependencies (torch & co.) are borrowed from this
    environment through a .pth line (a plain path: its own .pth files, such as the editable
    install's finder, are not run), so nothing of the checkout can be imported by accident."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                                "--no-index", "-q", str(wheel)], capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (Path(site) / "borrowed_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VISIONLOOP_") and k != "PYTHONPATH"}
    env.update(XDG_CONFIG_HOME=str(tmp_path / "xdg-config"), XDG_CACHE_HOME=str(tmp_path / "xdg-cache"),
               XDG_DATA_HOME=str(tmp_path / "xdg-data"))

    def run(*args):
        return subprocess.run([str(venv / "bin" / "visionloop"), *map(str, args)], cwd=empty, env=env,
                              capture_output=True, text=True, timeout=300)

    where = subprocess.run([str(python), "-c", "import visionloop, visionloop_plugins; "
                            "print(visionloop.__file__); print(visionloop_plugins.__file__)"],
                           cwd=empty, env=env, capture_output=True, text=True)
    assert where.returncode == 0, where.stderr
    assert all(line.startswith(str(venv)) for line in where.stdout.splitlines()), where.stdout
    listed = run("workflows")
    assert listed.returncode == 0, listed.stderr
    assert "describe-and-redraw" in listed.stdout
    assert "[bundled]" in listed.stdout
    done = run("--profile", "tiny", "run", "describe-and-redraw", "--input", f"image={EXAMPLE}", "--out", "out")
    assert done.returncode == 0, done.stderr
    assert list((empty / "out").glob("*/manifest.json")) and "picture: " in done.stdout
    assert run("--profile", "tiny", "init").returncode == 0  # the commented config, from the package data
    assert (tmp_path / "xdg-config" / "visionloop" / "config.yaml").read_bytes() == \
        (ROOT / "config.yaml").read_bytes().replace(b"\nprofile: default\n", b"\nprofile: tiny\n", 1)
