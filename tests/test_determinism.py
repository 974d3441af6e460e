"""Repeated runs agree by construction: every job runs with one intra-op thread count, decided
once per process (the `threads:` setting, else the physical cores), set on the thread that runs
it whatever the main thread has set, and recorded in `data["threads"]` and in run manifests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import json_lines
from visionloop.tools import ToolCall


def config_with(session_config_file, tmp_path, monkeypatch, **settings) -> Path:
    """The session's tiny config plus `settings`, made the one every load reads."""
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({**yaml.safe_load(session_config_file.read_text()), **settings}))
    monkeypatch.setenv("VISIONLOOP_CONFIG", str(path))
    return path


def one(loop, tool, **args):
    (result,) = loop.call(ToolCall(tool, args))
    assert result.ok, result.error
    return result


def test_jobs_run_with_the_configured_thread_count_not_the_main_threads(session_config_file, tmp_path,
                                                                        monkeypatch, registry):
    import torch

    from visionloop.config import load_config
    from visionloop.context import Context
    from visionloop.loop import Loop

    config = load_config(str(config_with(session_config_file, tmp_path, monkeypatch, threads=3)))
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the main thread differs from the configured count
    loop = Loop(registry, Context.create(config, tmp_path / "out"))
    try:
        assert loop.submit(lambda ctx: torch.get_num_threads()).result() == 3
        torch.set_num_threads(2)  # a later change on the main thread does not reach the jobs either
        assert loop.submit(lambda ctx: torch.get_num_threads()).result() == 3
        assert torch.get_num_threads() == 2  # and the jobs leave the main thread alone
    finally:
        loop.close()
        torch.set_num_threads(before)


def test_the_default_is_decided_once_from_the_cpus_this_process_may_use(tiny_config):
    from visionloop.models import threads

    n = threads.process_default()
    assert 1 <= n <= len(os.sched_getaffinity(0))
    assert threads.configured(tiny_config) == n == threads.process_default()


def test_caption_and_draw_record_the_thread_count(loop, example_image, tiny_config):
    from visionloop.models.threads import configured

    expected = configured(tiny_config)
    assert one(loop, "caption", image=[str(example_image)]).data["threads"] == expected
    assert one(loop, "draw", prompt="a lighthouse", seed=3, steps=2, size="64x64").data["threads"] == expected


def test_a_manifest_records_the_thread_count(cli, session_config_file, example_image, tmp_path, monkeypatch):
    config_with(session_config_file, tmp_path, monkeypatch, threads=3)
    flow = tmp_path / "describe.yaml"
    flow.write_text(yaml.safe_dump({"name": "describe", "inputs": {"image": {"type": "image"}},
                                    "steps": [{"id": "describe", "tool": "caption",
                                               "with": {"image": "${inputs.image}"}}]}))
    result = cli("run", flow, "--input", f"image={example_image}", "--out", tmp_path / "runs", "--json")
    assert result.code == 0, result.err
    manifest = json.loads(Path(json_lines.one(result.out)["manifest"]).read_text())
    assert manifest["environment"]["threads"] == 3
    (step,) = manifest["steps"]
    assert step["threads"] == 3 and step["data"]["threads"] == 3


BUSY_TORCH = "import torch\nx = torch.randn(512, 512)\nwhile True:\n    x = (x @ x).tanh()\n"


def test_fifty_greedy_answers_agree_while_other_processes_load_the_cpu(loop, example_image):
    """The trial that once differed: `see IMAGE -q "what?"` at temperature 0, the first call after
    a pause, beside a heavy process. Here: 50 calls, with a multi-threaded torch process and
    plain spinning processes on every CPU this process may use, and a pause before the first."""
    one(loop, "caption", image=[str(example_image)])  # loaded before the load starts
    busy = [subprocess.Popen([sys.executable, "-c", BUSY_TORCH])]
    busy += [subprocess.Popen([sys.executable, "-c", "while True: pass"])
             for _ in range(max(1, len(os.sched_getaffinity(0))))]
    try:
        time.sleep(1.0)  # the load is on before the first call
        answers = [one(loop, "see", image=[str(example_image)], question="what?", temperature=0.0,
                       max_new_tokens=24) for _ in range(50)]
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()
    assert len({a.text for a in answers}) == 1, {a.text for a in answers}
    assert len({a.data["threads"] for a in answers}) == 1


@pytest.mark.parametrize("value", [0, -2, 1.5, "four", True])
def test_threads_setting_is_validated(session_config_file, tmp_path, monkeypatch, value):
    from visionloop.config import load_config
    from visionloop.errors import ConfigError

    path = config_with(session_config_file, tmp_path, monkeypatch, threads=value)
    with pytest.raises(ConfigError) as caught:
        load_config(str(path))
    message = str(caught.value)
    assert "\n" not in message and "threads" in message and str(path) in message
    assert "unknown key" not in message  # the setting exists; the value is what is wrong


def test_a_valid_threads_setting_loads(session_config_file, tmp_path, monkeypatch):
    from visionloop.config import load_config

    assert load_config(str(config_with(session_config_file, tmp_path, monkeypatch, threads=2))).threads == 2
