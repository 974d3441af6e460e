"""`visionloop run --engine ray`: the same batch as in-process, on a local Ray (2 CPUs, loopback).

One Ray per module (started here; the engine then uses it as it is). The workflow captions
each picture with the tiny LLaVA and draws from the caption at 64x64 in 2 steps, so that both
text and pixels are compared with an in-process run of the same files."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from conftest import EXAMPLE
from PIL import Image

WORKFLOW = """\
name: caption-draw
inputs:
  image: {type: image}
steps:
  - id: describe
    tool: caption
    with: {image: "${inputs.image}", detail: short}
  - id: draw
    tool: draw
    with: {prompt: "${steps.describe.text}", width: 64, height: 64, steps: 2, seed: 7}
outputs:
  caption: "${steps.describe.text}"
  picture: "${steps.draw.image}"
files:
  caption.txt: "${steps.describe.text}"
"""

#: manifest fields that differ between any two runs (times, places), or that say where it ran
VOLATILE = {"started", "finished", "seconds", "run_dir", "interrupted_at"}


@pytest.fixture(scope="module")
def local_ray():
    import logging

    import ray

    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", logging_level=logging.ERROR,
             log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def setup(tmp_path):
    """7 different small pictures and a broken one; a config with one thread per job, so that
    the in-process run and the actors (1 CPU each) compute alike."""
    photos = tmp_path / "photos"
    photos.mkdir()
    base = Image.open(EXAMPLE).convert("RGB").resize((48, 40))
    for i in range(7):
        base.rotate(i * 40).save(photos / f"p{i}.png")
    (photos / "broken.png").write_bytes(b"<html>not a picture</html>")
    config = tmp_path / "config.yaml"
    shared = Path(os.environ["VISIONLOOP_CONFIG"]).read_text()  # the session's tiny config
    config.write_text(shared + "threads: 1\n")
    wf = tmp_path / "caption-draw.yaml"
    wf.write_text(WORKFLOW)
    return photos, config, wf


def run(cli, config, wf, photos, out, *extra):
    result = cli("--config", config, "run", wf, "--input", f"image={photos}", "--out", out, "--json", *extra)
    lines = [json.loads(line) for line in result.out.splitlines()]
    assert lines and "summary" in lines[-1], result.err
    return result, {Path(i["file"]).name: i for i in lines[:-1]}, lines[-1]["summary"]


def comparable(manifest_path: str) -> dict:
    """A manifest without its times and places (paths made relative to the run folder)."""
    data = json.loads(Path(manifest_path).read_text())
    run_dir = data["run_dir"]
    text = json.dumps({k: v for k, v in data.items() if k not in VOLATILE}).replace(run_dir, "RUN")
    data = json.loads(text)
    for step in data["steps"]:
        for key in VOLATILE:
            step.pop(key, None)
        data_ = step.get("data") or {}
        for key in [k for k in data_ if k.endswith("seconds") or k == "timings"]:
            del data_[key]
        for image in step.get("image_hashes") or []:
            image.pop("sha256")  # the file's bytes hold its timings (PNG record); pixels_sha256 stays
    return data


def pixels(path: str) -> bytes:
    with Image.open(path) as im:
        return im.convert("RGB").tobytes()


@pytest.mark.slow  # 45-100 s on a shared 2-core machine (three Ray pipelines); .ci/run runs it by name
@pytest.mark.needs("ray")
def test_ray_batch_matches_in_process_resumes_and_reruns(cli, setup, tmp_path, local_ray):
    photos, config, wf = setup
    local, local_items, local_summary = run(cli, config, wf, photos, tmp_path / "local")
    remote, ray_items, ray_summary = run(cli, config, wf, photos, tmp_path / "ray", "--engine", "ray")
    assert remote.code == local.code == 1  # the broken picture fails; the batch goes on
    assert ray_summary == local_summary == {
        "command": "run", "results": 8, "ok": 7, "failed": 1, "interrupted": 0, "skipped": 0, "not_run": 0,
        "workflow": "caption-draw", "status": "failed", "exit": 1, "error": None}
    assert set(ray_items) == set(local_items) == {f"p{i}.png" for i in range(7)} | {"broken.png"}
    broken = ray_items["broken.png"]
    assert broken["status"] == "failed" and "not a supported image" in broken["error"]
    assert broken["error"] == local_items["broken.png"]["error"] and "broken.png" in remote.err
    captions = set()
    for name, mine in ray_items.items():
        theirs = local_items[name]
        assert mine["status"] == theirs["status"] and mine["failed_step"] == theirs["failed_step"]
        assert comparable(mine["manifest"]) == comparable(theirs["manifest"]), name
        if mine["status"] != "ok":
            continue
        assert mine["outputs"]["caption"] == theirs["outputs"]["caption"]
        captions.add(mine["outputs"]["caption"])
        assert pixels(mine["outputs"]["picture"]) == pixels(theirs["outputs"]["picture"])
        run_dir = Path(mine["manifest"]).parent
        assert run_dir.parent == tmp_path / "ray"
        assert sorted(p.name for p in run_dir.iterdir()) == sorted(p.name for p in Path(theirs["manifest"]).parent.iterdir())
        assert (run_dir / "caption.txt").read_text() == (Path(theirs["manifest"]).parent / "caption.txt").read_text()
    assert len(captions) > 1  # different pictures, different captions: the comparison means something

    # Again: the 7 finished runs are skipped (pointing at them); only the broken one runs.
    again, items, summary = run(cli, config, wf, photos, tmp_path / "ray", "--engine", "ray", "--workers", "1")
    assert again.code == 1 and (summary["ok"], summary["failed"], summary["skipped"]) == (0, 1, 7)
    for name, item in items.items():
        if name != "broken.png":
            assert item["status"] == "skipped" and item["error"] is None
            assert item["manifest"] == ray_items[name]["manifest"] and item["outputs"] == ray_items[name]["outputs"]
    # --rerun: all 8 run again, into new run folders.
    _, items, summary = run(cli, config, wf, photos, tmp_path / "ray", "--engine", "ray", "--rerun")
    assert (summary["ok"], summary["failed"], summary["skipped"]) == (7, 1, 0)
    assert all(items[n]["manifest"] != ray_items[n]["manifest"] for n in items)
    assert all(items[n]["outputs"]["caption"] == ray_items[n]["outputs"]["caption"] for n in items if n != "broken.png")


def test_engine_ray_without_ray_says_how_to_install(cli, setup, tmp_path, monkeypatch):
    photos, config, wf = setup
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    result = cli("--config", config, "run", wf, "--input", f"image={photos}", "--out", tmp_path / "o", "--engine", "ray")
    assert result.code == 2 and result.out == ""
    assert result.err.strip().splitlines() == [("error: --engine ray needs Ray Data, which is not installed: "
                                                 "pip install 'visionloop[cluster]' (or pip install 'ray[data,client]')")]
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("flags, message", [
    (["--workers", "2"], "error: --workers is a Ray setting: add --engine ray (or engine: ray in the config)"),
    (["--engine", "ray", "--address", " "], "error: --address is empty (leave it out to start a local Ray)"),
    (["--engine", "ray", "--address", "http://x"],  # not Ray's "It looks like you set RAY_ADDRESS"
     "error: --address http://x: http:// is not a Ray address: use auto, ray://HOST:10001 (Ray Client) or HOST:PORT"),
    (["--engine", "ray", "--address", "head"],
     "error: --address head: must be auto, ray://HOST:10001 (Ray Client) or HOST:PORT (from a node of the cluster)"),
])
def test_ray_settings_mistakes_are_one_line(cli, setup, tmp_path, flags, message):
    photos, config, wf = setup
    result = cli("--config", config, "run", wf, "--input", f"image={photos}", "--out", tmp_path / "o", *flags)
    assert result.code == 2 and result.err.strip().splitlines() == [message]


@pytest.mark.parametrize("flag, value", [("--workers", "0"), ("--batch-size", "-1"), ("--cpus-per-worker", "0"),
                                         ("--gpus-per-worker", "x")])
def test_ray_numbers_are_checked_by_the_parser(cli, setup, tmp_path, flag, value):
    photos, config, wf = setup
    result = cli("--config", config, "run", wf, "--input", f"image={photos}", "--engine", "ray", flag, value)
    first = result.err.splitlines()[0]
    assert result.code == 2 and first.startswith(f"visionloop run: error: argument {flag}: ") and "Traceback" not in result.err


@pytest.mark.parametrize("engine", ["local", "ray"])
def test_a_url_input_is_refused_in_one_line(cli, setup, tmp_path, engine):
    _, config, wf = setup
    result = cli("--config", config, "run", wf, "--input", "image=s3://bucket/photos/*.jpg", "--out", tmp_path / "o",
                 "--engine", engine)
    assert result.code == 1 and result.err.strip().splitlines() == [(
        "error: s3://bucket/photos/*.jpg: input 'image': a URL is not read directly; mount the bucket or share "
        "at a path and give that (see docs/scaling.md)")]


def test_a_url_out_is_refused_in_one_line(cli, setup, tmp_path):
    photos, config, wf = setup
    result = cli("--config", config, "run", wf, "--input", f"image={photos}", "--out", "gs://bucket/runs",
                 "--engine", "ray")
    assert result.code == 2 and result.err.strip().splitlines() == [(
        "error: --out gs://bucket/runs: a URL is not written directly; mount the bucket or share at a path "
        "and give that (see docs/scaling.md)")]
    assert not Path("gs:").exists()


def test_engine_and_ray_settings_from_the_config(cli, setup, tmp_path, monkeypatch):
    photos, config, wf = setup
    shared = config.read_text()
    config.write_text(shared + "engine: ray\nray: {workers: 1, gpus_per_worker: 0}\n")
    monkeypatch.setitem(sys.modules, "ray", None)
    result = cli("--config", config, "run", wf, "--input", f"image={photos}", "--out", tmp_path / "o")
    assert result.code == 2 and "--engine ray needs Ray Data" in result.err
    config.write_text(shared + "ray: {workers: 0}\n")
    result = cli("--config", config, "run", wf, "--input", f"image={photos}", "--out", tmp_path / "o")
    assert result.code == 1 and len(result.err.strip().splitlines()) == 1
    assert f"{config}:" in result.err and "ray.workers" in result.err
    for address, why in (('""', "is empty"), ("http://x", "http:// is not a Ray address")):
        config.write_text(shared + f"ray: {{address: {address}}}\n")  # refused as the flag is, with its line
        result = cli("--config", config, "run", wf, "--input", f"image={photos}", "--out", tmp_path / "o")
        assert result.code == 1 and len(result.err.strip().splitlines()) == 1, result.err
        assert f"{config}:{len(shared.splitlines()) + 1}:" in result.err and "ray.address" in result.err
        assert why in result.err


def test_a_single_run_with_engine_ray_runs_here(cli, setup, tmp_path, monkeypatch):
    photos, config, wf = setup
    monkeypatch.setitem(sys.modules, "ray", None)  # not needed for one picture
    result = cli("--config", config, "run", wf, "--input", f"image={photos / 'p0.png'}", "--out", tmp_path / "o",
                 "--engine", "ray")
    assert result.code == 0, result.err
    assert "note: --engine ray runs batches (a folder or glob); a single run runs here" in result.err
    assert "run folder: " + str(tmp_path / "o") in result.out
