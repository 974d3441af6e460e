"""Live progress in a real terminal (pexpect): a model's first load, each workflow step as it
starts and ends, LLaVA's answer streamed token by token; and none of it in pipes, under
`--json` or with `-q`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest


pexpect = pytest.importorskip("pexpect")

DIM = re.compile(r"\x1b\[2m(.*?)\x1b\[0m\r\n")


def spawn(config, *args, env):
    return pexpect.spawn(sys.executable, ["-m", "visionloop", "--config", str(config), *map(str, args)],
                         env={**os.environ, **env}, encoding="utf-8", timeout=240, dimensions=(40, 120))


def test_a_run_shows_each_step_and_each_load_while_it_runs(session_config_file, tmp_path, example_image, env):
    child = spawn(session_config_file, "run", "describe-and-redraw", "--input", f"image={example_image}",
                  "--out", tmp_path / "out", env=env)
    child.expect(r"step 1/2 describe \(caption\): started")
    assert child.isalive()  # said before the step ran, not after the run
    child.expect(r"loading LLaVA tiny \(built-in\)…")
    child.expect(r"LLaVA tiny loaded in \d+\.\d s")
    child.expect(r"step 1/2 describe \(caption\): done in \d+\.\d s")
    child.expect(r"step 2/2 redraw \(restyle\): started")
    assert child.isalive()
    child.expect(r"loading Stable Diffusion tiny \(built-in\)…")
    child.expect(r"\d+/\d+ \[")  # diffusers' denoising bar, with its time left
    child.expect(r"step 2/2 redraw \(restyle\): done in")
    child.expect(r"picture: ")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_see_streams_its_answer_as_it_is_written(session_config_file, tmp_path, example_image, env):
    args = ["see", example_image, "-q", "what is this?", "--max-new-tokens", "120", "--out", tmp_path / "out"]
    child = spawn(session_config_file, *args, env=env)
    child.expect(r"LLaVA tiny loaded in [\d.]+ s\x1b\[0m\r\n")
    chunks, times = [], []
    while True:
        try:
            chunks.append(child.read_nonblocking(4096, timeout=120))
            times.append(time.monotonic())
        except pexpect.EOF:
            break
    child.close()
    assert child.exitstatus == 0
    streamed = "".join(chunks)
    # the answer came in many writes spread over the generation, not in one at the end
    assert len(chunks) > 5 and times[-1] - times[0] > 0.05, chunks[:10]
    # and it is exactly the answer a script gets (greedy, same seed), once, on its own line
    piped = subprocess.run([sys.executable, "-m", "visionloop", "--config", str(session_config_file), *map(str, args),
                            "--json"], capture_output=True, text=True, env={**os.environ, **env}, timeout=240)
    answer = json.loads(piped.stdout.splitlines()[0])["text"]
    assert answer and streamed.replace("\r\n", "\n") == answer + "\n"


@pytest.mark.parametrize("how", ["pipe", "json", "quiet"])
def test_no_progress_in_pipes_json_or_quiet(session_config_file, tmp_path, example_image, env, how):
    args = ["run", "describe-and-redraw", "--input", f"image={example_image}", "--out", tmp_path / "out"]
    if how == "pipe":
        result = subprocess.run([sys.executable, "-m", "visionloop", "--config", str(session_config_file),
                                 *map(str, args)], capture_output=True, text=True, env={**os.environ, **env},
                                timeout=240)
        assert result.returncode == 0, result.stderr
        assert "loading" not in result.stderr and "started" not in result.stderr and "%|" not in result.stderr
        assert "\x1b[" not in result.stdout + result.stderr
        return
    child = spawn(session_config_file, *args, "--json" if how == "json" else "-q", env=env)
    seen = child.read()  # to the end
    child.close()
    assert child.exitstatus == 0, seen
    assert not DIM.search(seen) and "loading" not in seen and "%|" not in seen, seen
    if how == "json":
        for line in seen.strip().splitlines():
            json.loads(line)  # every line is JSON


def test_a_load_is_announced_with_its_size(tmp_path):
    """The first load of a model from a folder says what and how big; the second says nothing."""
    from visionloop.config import load_config
    from visionloop.models.cache import ModelCache
    from visionloop.models.loading import weights_size

    folder = tmp_path / "model"
    (folder / "unet").mkdir(parents=True)
    (folder / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"\0" * 3_000_000)
    (folder / "model_index.json").write_text("{}")
    assert weights_size(str(folder)) == 3_000_000
    assert weights_size(str(tmp_path / "missing")) is None
    cache = ModelCache(load_config(None))
    lines = []
    cache.report = lines.append
    label = cache.label("Stable Diffusion", str(folder))
    assert label == f"Stable Diffusion {folder} (3 MB)"
    assert cache.get("x", lambda: object(), label) is cache.get("x", lambda: 1 / 0, label)
    assert lines[0] == f"loading {label}…"
    assert re.fullmatch(rf"Stable Diffusion {re.escape(str(folder))} loaded in \d+\.\d s", lines[1])
    assert len(lines) == 2
