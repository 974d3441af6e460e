"""Shared fixtures. The tiny models are built once per test session into a temporary cache,
and one `Loop` (one `ModelCache`) is shared by the tests that only need to call tools."""

from __future__ import annotations

pytest_plugins = ["chat_fixtures"]

import contextlib
import io
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "lighthouse.png"


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def session_config_file(tiny_cache, tmp_path_factory) -> Path:
    """A config file selecting the tiny profile, with the session's model cache."""
    folder = tmp_path_factory.mktemp("config")
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump({"profile": "tiny", "cache_dir": str(tiny_cache),
                                    "output": str(folder / "out"), "workflows": str(ROOT / "workflows")}))
    return path


@pytest.fixture(autouse=True)
def _isolated_env(session_config_file, monkeypatch, tmp_path):
    """Every test sees the tiny config and runs in its own folder (no ./config.yaml there)."""
    monkeypatch.setenv("VISIONLOOP_CONFIG", str(session_config_file))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("VISIONLOOP_STATE_DIR", str(tmp_path / "state"))  # watcher ledgers
    monkeypatch.setenv("VISIONLOOP_DATA_DIR", str(tmp_path / "data"))  # the history of tool calls
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))  # no user workflows of the machine's
    for var in ("VISIONLOOP_PROFILE", "VISIONLOOP_DEVICE", "VISIONLOOP_DTYPE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def tiny_config(session_config_file):
    from visionloop.config import load_config

    return load_config(str(session_config_file))


@pytest.fixture(scope="session")
def registry():
    from visionloop.plugins import load_registry

    return load_registry()


@pytest.fixture(scope="session")
def loop(tiny_config, registry, tmp_path_factory):
    """One loop, one ModelCache, shared across tests: models load once per session."""
    from visionloop.context import Context
    from visionloop.loop import Loop

    ctx = Context.create(tiny_config, tmp_path_factory.mktemp("out"))
    lp = Loop(registry, ctx)
    yield lp
    lp.close()


@pytest.fixture
def example_image() -> Path:
    return EXAMPLE


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli():
    """Run `visionloop ARGS...` in this process; returns exit code, stdout and stderr."""
    from visionloop.cli.app import main

    def run(*args: str) -> CliResult:
        import logging

        out, err = io.StringIO(), io.StringIO()
        code = 0
        root_level = logging.getLogger().level  # main() sets it, as a one-shot program may
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main([str(a) for a in args])
            except SystemExit as exc:  # argparse usage errors and --help
                code = exc.code if isinstance(exc.code, int) else 1
            finally:
                logging.getLogger().setLevel(root_level)
        return CliResult(code, out.getvalue(), err.getvalue())

    return run


def run_subprocess(*args: str, env: dict | None = None, **kwargs):
    """`python -m visionloop ARGS...` in a child process (for import-time and exit-code checks)."""
    import subprocess

    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "visionloop", *map(str, args)], capture_output=True, text=True,
                          env=full_env, timeout=300, **kwargs)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models on a busy shared machine: one intra-op thread is ~10x faster than
    oversubscribed OpenMP threads spinning against other processes. Jobs pin the process's
    thread count (`visionloop.models.threads`) on the thread that runs them, so this sets that
    process default (the config names none) to 1, restored after the module.
    A test module opts in with `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    from visionloop.models import threads

    before = threads.process_default()
    threads._decided = 1
    yield
    threads._decided = before


# --- optional dependencies: a skip in CI is a test that never ran ----------------------------
# A test that needs something optional says so with `@pytest.mark.needs("peft")` (a Python
# package) or `@pytest.mark.needs("tesseract")` (a program on PATH). Without it the test skips
# locally with "missing dependency: NAME (how to get it)"; under VISIONLOOP_CI=1 (set by .ci/run,
# which installs every optional dependency) it is an error instead. A `pytest.importorskip` skip
# is held to the same rule. Something CI cannot install goes in CI_MAY_LACK with the reason.
# .ci/check_skips.py checks the JUnit report again and prints the counts.
PROGRAMS = {"tesseract": "apt-get install tesseract-ocr; macOS: brew install tesseract",
            "chromium": "apt-get install chromium", "chromedriver": "apt-get install chromium-driver"}
PACKAGES = {"peft": "pip install -e '.[lora]'", "pexpect": "pip install -e '.[test]'",
            **{name: "pip install -e '.[serve]'" for name in ("fastapi", "uvicorn", "jinja2", "python_multipart")},
            **{name: "pip install -e '.[test]'" for name in ("httpx", "openai", "selenium")}}
CI_MAY_LACK: dict[str, str] = {}  # name -> why CI cannot install it
ALLOWED = "allowed in CI:"  # how such a skip starts; .ci/check_skips.py lets it pass


def _strict() -> bool:
    return os.environ.get("VISIONLOOP_CI") == "1"


def missing_dependency(name: str) -> str | None:
    """None when `name` is available, else how to get it."""
    import importlib.util
    import shutil

    if name in PROGRAMS:
        return None if shutil.which(name) else PROGRAMS[name]
    try:
        found = importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        found = False
    return None if found else PACKAGES.get(name, f"pip install {name}")


def pytest_runtest_setup(item):
    for mark in item.iter_markers("needs"):
        for name in mark.args:
            hint = missing_dependency(name)
            if hint is None:
                continue
            if _strict() and name in CI_MAY_LACK:
                pytest.skip(f"{ALLOWED} {name} is missing ({CI_MAY_LACK[name]})")
            if _strict():
                pytest.fail(f"missing dependency {name} under VISIONLOOP_CI=1: CI must install it ({hint})",
                            pytrace=False)
            pytest.skip(f"missing dependency: {name} ({hint})")


def _importorskip_in_ci(report):
    """Under VISIONLOOP_CI=1 a `pytest.importorskip` skip (of a test or, at module level, of a
    whole file) fails: CI installs every dependency, so the skip would hide a test."""
    import re

    if not (_strict() and report.skipped and isinstance(report.longrepr, tuple)) or hasattr(report, "wasxfail"):
        return report
    reason = str(report.longrepr[2]).removeprefix("Skipped: ")
    found = re.search(r"could not import '([^'.]+)", reason)
    if found and found.group(1) in CI_MAY_LACK:
        report.longrepr = (*report.longrepr[:2], f"{ALLOWED} {reason} ({CI_MAY_LACK[found.group(1)]})")
    elif found:
        report.outcome = "failed"
        report.longrepr = (f"missing dependency under VISIONLOOP_CI=1 (install it in .ci/run, or list it in "
                           f"CI_MAY_LACK in tests/conftest.py): {reason}")
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    return _importorskip_in_ci((yield))


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    return _importorskip_in_ci((yield))


# --- shared by the workflow and watcher tests ----------------------------------------------

@pytest.fixture(scope="module")
def fakes():
    """The registry with the fake tools of `tests/workflow_fakes.py` (echo, paint, boom, ...)."""
    import workflow_fakes
    from visionloop.plugins import load_registry

    return load_registry(extra=[workflow_fakes])


@pytest.fixture
def ctx(tiny_config, tmp_path):
    from visionloop.context import Context

    return Context.create(tiny_config, tmp_path / "ctx-out")


@pytest.fixture
def watchers():
    """Watchers a test starts; each is stopped when the test ends."""
    made = []
    yield made
    for w in made:
        w.stop()
