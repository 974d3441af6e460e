"""Rerunning a batch skips the files whose earlier run finished ok (in-process engine; the Ray
engine uses the same look-up, tests/test_ray_batch.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def photos(tmp_path, example_image):
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(example_image, folder / "a.png")
    shutil.copy(example_image, folder / "shot-2.png")  # a stem ending like a taken folder name's "-N"
    (folder / "broken.png").write_bytes(b"not a picture")
    return folder


def run(cli, photos, out, *extra):
    result = cli("run", "describe-folder", "--input", f"photo={photos}", "--input", "detail=short",
                 "--out", out, "--json", *extra)
    lines = [json.loads(line) for line in result.out.splitlines()]
    assert lines and "summary" in lines[-1], result.err
    return result, {Path(i["file"]).name: i for i in lines[:-1]}, lines[-1]["summary"]


def counts(summary) -> tuple:
    return summary["ok"], summary["failed"], summary["skipped"]


def test_second_run_skips_finished_items_and_points_at_them(cli, photos, tmp_path):
    out = tmp_path / "runs"
    first, before, summary = run(cli, photos, out)
    assert first.code == 1 and counts(summary) == (2, 1, 0)
    again, items, summary = run(cli, photos, out)
    assert again.code == 1 and counts(summary) == (0, 1, 2) and summary["status"] == "failed"
    for name in ("a.png", "shot-2.png"):
        item = items[name]
        assert item["status"] == "skipped" and item["error"] is None
        assert item["manifest"] == before[name]["manifest"] and item["outputs"] == before[name]["outputs"]
        assert item["steps"] == json.loads(Path(item["manifest"]).read_text())["steps"]
    assert items["broken.png"]["status"] == "failed"  # a failed run is never skipped: it runs again
    assert items["broken.png"]["manifest"] != before["broken.png"]["manifest"]
    assert "skipped" not in again.err  # a skip is no error
    # plain output says what was skipped and where its run is; all skipped or ok: exit 0
    (photos / "broken.png").unlink()
    plain = cli("run", "describe-folder", "--input", f"photo={photos}", "--input", "detail=short", "--out", out)
    assert plain.code == 0, plain.err
    assert f"skipped {photos / 'a.png'} -> {Path(before['a.png']['manifest']).parent} (finished ok earlier" in plain.out
    assert "describe-folder: 2 items, 0 ok, 0 failed, 2 skipped (finished earlier)" in plain.out


def test_what_changed_runs_again(cli, photos, tmp_path):
    out = tmp_path / "runs"
    (photos / "broken.png").unlink()
    _, before, _ = run(cli, photos, out)
    # a picture that changed since its run
    Image.open(photos / "a.png").rotate(90).save(photos / "a.png")
    _, items, summary = run(cli, photos, out)
    assert counts(summary) == (1, 0, 1) and items["a.png"]["status"] == "ok"
    assert items["shot-2.png"]["manifest"] == before["shot-2.png"]["manifest"]
    # another value for an input, other settings (dtype), or --rerun: every file runs
    result = cli("run", "describe-folder", "--input", f"photo={photos}", "--input", "detail=long",
                 "--out", out, "--json")
    assert '"ok":2,' in result.out.splitlines()[-1]
    _, _, summary = run(cli, photos, out, "--dtype", "float32")
    assert counts(summary) == (2, 0, 0)
    _, items, summary = run(cli, photos, out, "--rerun")
    assert counts(summary) == (2, 0, 0) and items["shot-2.png"]["manifest"] != before["shot-2.png"]["manifest"]


def test_a_run_whose_manifest_does_not_say_ok_is_not_skipped(cli, photos, tmp_path):
    out = tmp_path / "runs"
    (photos / "broken.png").unlink()
    _, before, _ = run(cli, photos, out)
    manifest = Path(before["a.png"]["manifest"])
    data = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**data, "status": "interrupted"}))  # the process died during it
    (Path(before["shot-2.png"]["manifest"])).write_text("{not json")  # a torn manifest
    _, items, summary = run(cli, photos, out)
    assert counts(summary) == (2, 0, 0) and {i["status"] for i in items.values()} == {"ok"}
