"""`visionloop validate / run / replay / workflows` and the shipped examples, on the tiny profile."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

from json_lines import one, parse, results

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "workflows").glob("*.yaml"))
RUN_KEYS = {"workflow", "file", "status", "outputs", "steps", "manifest", "error", "failed_step"}


def run_json(cli, *args):
    """The run's one line (None when it has none) and the summary agreeing with it."""
    result = cli("run", *args, "--json")
    lines, summary = parse(result.out)
    assert summary["exit"] == result.code and summary["results"] == len(lines) <= 1, result.out
    return result, lines[0] if lines else None


def test_workflows_lists_every_example_with_inputs(cli):
    result = cli("workflows")
    assert result.code == 0
    for path in EXAMPLES:
        assert path.stem in result.out
    listing = {w["name"]: w for w in results(cli("workflows", "--json").out)}
    assert set(listing) == {p.stem for p in EXAMPLES} and all(w["valid"] for w in listing.values())
    assert {"name": "subject", "type": "text", "required": True, "default": None,
            "description": "what the poster shows"} in listing["poster"]["inputs"]


def test_alt_text_example_writes_sidecars(cli, example_image, tmp_path):
    result, out = run_json(cli, "alt-text", "--input", f"image={example_image}", "--out", tmp_path)
    assert result.code == 0, result.err
    assert set(out) == RUN_KEYS and out["status"] == "ok" and out["workflow"] == "alt-text"
    assert [s["tool"] for s in out["steps"]] == ["caption", "read-text"]
    run = Path(out["manifest"]).parent
    assert run.parent == tmp_path
    assert (run / "alt-text.txt").read_text() == out["outputs"]["alt"].rstrip("\n") + "\n"
    sidecar = json.loads((run / "alt-text.json").read_text())
    assert sidecar["image"] == str(example_image.resolve()) and sidecar["text_in_image"] == out["outputs"]["text_in_image"]
    manifest = json.loads(Path(out["manifest"]).read_text())
    assert manifest["status"] == "ok" and manifest["environment"]["models"]["llava"]["model"] == "tiny"
    assert manifest["environment"]["device"] == "cpu" and manifest["environment"]["dtype"] == "float32"


def test_poster_example_then_replay_is_identical(cli, tmp_path, registry):
    result, out = run_json(cli, "poster", "--input", "subject=a lighthouse", "--input", "seed=5", "--out", tmp_path)
    assert result.code == 0, result.err
    poster = Path(out["outputs"]["poster"])
    assert poster.is_file() and poster.parent == Path(out["manifest"]).parent and out["outputs"]["seed"] == 5
    assert out["steps"][1]["args"]["image"] == str(poster)  # the caption looked at the drawing
    again = cli("replay", out["manifest"], "--out", tmp_path / "again")
    assert again.code == 0, again.err
    assert again.out.startswith("identical: all 2 steps")
    report = one(cli("replay", out["manifest"], "--out", tmp_path / "again", "--json").out)
    assert report["identical"] and report["differences"] == [] and report["error"] is None
    assert RUN_KEYS <= set(report) and report["outputs"] == {}


def test_describe_and_redraw_example(cli, example_image, tmp_path, registry):
    result, out = run_json(cli, "describe-and-redraw", "--input", f"image={example_image}",
                           "--input", "style=an ink sketch", "--out", tmp_path)
    assert result.code == 0, result.err
    assert Path(out["outputs"]["picture"]).is_file()
    assert out["steps"][1]["args"]["prompt"] == out["outputs"]["caption"]
    assert out["steps"][1]["args"]["style"] == "an ink sketch" and out["steps"][1]["args"]["seed"] == 42


def test_folder_batch_example_with_a_broken_file(cli, example_image, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(example_image, photos / "a.png")
    (photos / "broken.png").write_bytes(b"<html>not a picture</html>")
    shutil.copy(example_image, photos / "c.png")
    result = cli("run", "describe-folder", "--input", f"photo={photos}", "--input", "detail=short",
                 "--out", tmp_path / "runs", "--json")
    assert result.code == 1
    lines, summary = parse(result.out)  # one line per item, the shape of a single run's
    assert all(set(i) == RUN_KEYS for i in lines) and summary["status"] == "failed"
    assert summary == {"command": "run", "results": 3, "ok": 2, "failed": 1, "interrupted": 0, "skipped": 0,
                       "not_run": 0, "workflow": "describe-folder", "status": "failed", "exit": 1, "error": None}
    assert result.err.count("error: ") == 1 and "broken.png: " in result.err
    items = {Path(i["file"]).name: i for i in lines}
    assert items["broken.png"]["status"] == "failed" and "not a supported image" in items["broken.png"]["error"]
    assert items["a.png"]["status"] == "ok" and items["a.png"]["outputs"]["description"]
    for item in items.values():
        assert json.loads(Path(item["manifest"]).read_text())["status"] == item["status"]
    text = cli("run", "describe-folder", "--input", f"photo={photos}/[ac].png", "--out", tmp_path / "runs")
    assert text.code == 0 and "2 items, 2 ok, 0 failed" in text.out


def test_dry_run_prints_the_plan_loads_and_writes_nothing(tmp_path, example_image):
    code = ("import sys\nfrom visionloop.cli.app import main\nrc = main(sys.argv[1:])\n"
            "print('HEAVY', [m for m in ('torch', 'transformers', 'diffusers') if m in sys.modules])\n"
            "sys.exit(rc)\n")
    out = tmp_path / "never"
    proc = subprocess.run([sys.executable, "-c", code, "run", "describe-and-redraw", "--dry-run", "--out", out,
                           "--input", f"image={example_image}", "--json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    (plan,), summary = parse(proc.stdout.split("HEAVY")[0])
    assert summary["status"] == "planned" and summary["exit"] == 0
    assert plan["status"] == "planned" and [s["tool"] for s in plan["steps"]] == ["caption", "restyle"]
    assert plan["steps"][1]["args"]["prompt"] == "${steps.describe.text}" and plan["steps"][1]["args"]["seed"] == 42
    assert plan["models"]["vision"]["model"] == "tiny"
    assert "HEAVY []" in proc.stdout and not out.exists()


def test_run_errors_are_one_line(cli, tmp_path, example_image):
    missing = cli("run", "alt-text")
    assert missing.code == 1 and "input 'image' is required (give --input image=VALUE)" in missing.err
    assert "Traceback" not in missing.err
    assert cli("run", "alt-text", "--input", "image").code == 2
    unknown = cli("run", "no-such-flow")
    assert unknown.code == 1 and "workflow not found" in unknown.err
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nsteps:\n  - id: a\n    tool: caption\n    with: {image: x.png, detial: long}\n")
    invalid = cli("run", bad)
    assert invalid.code == 1 and f"{bad}:5: steps[0].with.detial: caption takes no argument 'detial'" in invalid.err


def test_failed_step_exit_1_and_manifest(cli, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    result, out = run_json(cli, "alt-text", "--input", f"image={broken}", "--out", tmp_path)
    assert result.code == 1 and out["status"] == "failed"
    assert out["steps"][0]["status"] == "failed" and len(out["steps"]) == 1
    manifest = json.loads(Path(out["manifest"]).read_text())
    assert manifest["status"] == "failed" and manifest["failed_step"] == "describe"
    assert "broken.png" in manifest["error"]
    # replaying it fails the same way: "identical", but never as if it had worked
    again = cli("replay", out["manifest"], "--out", tmp_path / "again")
    assert again.code == 1 and "gave the same text" not in again.out
    first = again.out.splitlines()[0]
    assert first.startswith("identical to the original run, which failed again at step describe: ")
    assert "broken.png" in first
    report = one(cli("replay", out["manifest"], "--out", tmp_path / "again", "--json").out)
    assert report["identical"] and report["status"] == "failed" and report["failed_step"] == "describe"
    assert "broken.png" in report["error"]


def test_workflows_folder_from_config_lists_invalid_files_and_dry_run_batch(cli, tmp_path, tiny_config, example_image):
    import yaml

    folder = tmp_path / "flows"
    folder.mkdir()
    shutil.copy(ROOT / "workflows" / "describe-folder.yaml", folder / "mine.yaml")
    (folder / "broken.yml").write_text("name: broken\nsteps:\n  - id: a\n    tool: nope\n")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"profile": "tiny", "cache_dir": str(tiny_config.cache_path),
                                      "workflows": str(folder)}))
    listing = cli("--config", config, "workflows")
    assert listing.code == 0 and "mine  Describe each photo" in listing.out
    assert f"broken  (invalid: {folder / 'broken.yml'}:4: steps[0].tool: unknown tool 'nope'" in listing.out
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("x.png", "y.png"):
        shutil.copy(example_image, photos / name)
    plan = cli("--config", config, "run", "mine", "--input", f"photo={photos}", "--dry-run", "--out", tmp_path / "o")
    assert plan.code == 0 and "once per image for input 'photo': 2 files" in plan.out
    assert not (tmp_path / "o").exists()


def test_subfolders_a_batch_leaves_out_are_noted(cli, example_image, tmp_path):
    """A folder input takes the pictures directly in it; its subfolders, or folders a glob
    matches, are left out with a note (an error when nothing else is left)."""
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    shutil.copy(example_image, photos / "a.png")
    shutil.copy(example_image, photos / "sub" / "b.png")
    result = cli("run", "describe-folder", "--input", f"photo={photos}", "--dry-run")
    assert result.code == 0, result.err
    assert result.err.strip().splitlines() == [(
        f"note: {photos}: 1 subfolder left out (a folder input takes the pictures directly in it; for those in "
        f"subfolders too give a glob: 'photo={photos / '**' / '*.jpg'}')")]
    result = cli("run", "describe-folder", "--input", f"photo={photos}/s*", "--dry-run")  # only a folder matches
    error = result.err.strip()
    assert result.code == 1 and "\n" not in error and error.startswith(f"error: {photos}/s*: no images found for ")
    assert error.endswith("); 1 folder it matches left out (a glob takes the files it matches, and a folder is not "
                          "read through: end the glob in the files, e.g. *.jpg)")
    result = cli("run", "describe-folder", "--input", f"photo={photos}/**/*.png", "--dry-run", "--json")
    assert result.code == 0 and result.err == ""  # a glob ending in files: no note
