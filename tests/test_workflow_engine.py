"""Running workflows with instant fake tools: inputs, references, failures, manifests, batch, replay."""

import json
import textwrap
from pathlib import Path

import pytest
from PIL import Image

import workflow_fakes
from visionloop.workflows import WorkflowError, check_inputs, load_workflow, run_workflow
from visionloop.workflows.batch import batch_input, run_batch
from visionloop.workflows.replay import replay


@pytest.fixture
def write(tmp_path, tiny_config, fakes):
    def make(text: str, name: str = "wf.yaml"):
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return load_workflow(str(path), tiny_config, fakes)
    return make


@pytest.fixture(autouse=True)
def _calls():
    workflow_fakes.CALLS.clear()


def png(path: Path, colour=(200, 10, 10)) -> Path:
    Image.new("RGB", (12, 10), colour).save(path)
    return path


CHAIN = """
name: chain
inputs:
  words: {type: text}
  n: {type: int, default: 2}
  secret: {type: text, default: S3CRET}
steps:
  - id: a
    tool: echo
    with: {text: "${inputs.words}"}
  - id: b
    tool: echo
    with: {text: "[${steps.a.text}]", times: "${inputs.n}"}
  - id: c
    tool: echo
    with: {text: "${steps.a.text}", times: "${steps.b.data.length}"}
outputs:
  first: "${steps.a.text}"
  words: "${steps.a.data.words}"
  length: "${steps.b.data.length}"
"""


def test_chain_resolves_types_and_inserts_produced_text_literally(write, ctx, fakes, tmp_path):
    wf = write(CHAIN.replace('times: "${steps.b.data.length}"', "times: 1"))
    hostile = "${inputs.secret} {{ 7*7 }} $(touch pwned)"
    out = run_workflow(wf, {"words": hostile}, ctx, fakes, tmp_path / "runs")
    assert out.status == "ok", out.error
    calls = workflow_fakes.CALLS
    assert calls[0] == ("echo", {"text": hostile, "times": 1})
    assert calls[1] == ("echo", {"text": f"[{hostile}]", "times": 2})  # int input kept its type
    assert out.outputs == {"first": hostile, "words": hostile.split(), "length": 2 * len(hostile) + 4}
    assert "S3CRET" not in json.dumps(out.outputs) and not (tmp_path / "pwned").exists()
    run = out.run_dir
    assert run.parent == tmp_path / "runs" and json.loads((run / "outputs.json").read_text()) == out.outputs
    manifest = json.loads(out.manifest.read_text())
    assert manifest["status"] == "ok" and [s["status"] for s in manifest["steps"]] == ["ok"] * 3
    assert manifest["steps"][1]["args"] == {"text": f"[{hostile}]", "times": 2}
    assert manifest["workflow"]["sha256"] == wf.sha256 and manifest["workflow"]["file"] == str(wf.path)
    assert manifest["inputs"]["n"] == {"type": "int", "value": 2}
    env = manifest["environment"]
    assert {"python", "packages", "device", "dtype"} <= set(env)
    assert set(env["packages"]) >= {"visionloop", "torch", "transformers", "diffusers"}
    from importlib import metadata

    for pkg in ("onnxruntime", "rapidocr-onnxruntime"):  # read-text's backend, recorded when installed
        try:
            assert env["packages"][pkg] == metadata.version(pkg)
        except metadata.PackageNotFoundError:
            assert pkg not in env["packages"]


def test_data_reference_into_int_argument_is_range_checked_at_run_time(write, ctx, fakes, tmp_path):
    wf = write(CHAIN)  # step c gets times = len(...) > 5, which the tool's range refuses
    out = run_workflow(wf, {"words": "hello"}, ctx, fakes, tmp_path / "runs")
    assert out.status == "failed" and out.failed_step == "c"
    assert "times: must be at most 5" in out.error


def test_bad_inputs_raise_before_anything_runs_or_is_written(write, ctx, fakes, tmp_path):
    wf = write("""
        name: needs
        inputs:
          words: {type: text}
          n: {type: int, default: 1, max: 3}
          pic: {type: image, required: false}
          mode: {type: choice, choices: [a, b], default: a}
        steps:
          - id: a
            tool: echo
            with: {text: "${inputs.words}"}
        """)
    runs = tmp_path / "runs"
    with pytest.raises(WorkflowError) as err:
        run_workflow(wf, {"n": "many", "pic": str(tmp_path / "missing.png"), "mode": "c", "extra": "1"},
                     ctx, fakes, runs)
    text = str(err.value)
    # run_workflow (also the chat's /run) says it neutrally: no CLI flag in the hint
    assert "(give words=VALUE)" in text and "--input" not in text
    for expected in ("unknown input 'extra'", "input 'words' is required (give words=VALUE)",
                     "input 'n': expected a whole number, got 'many'", "missing.png: file not found",
                     "input 'mode': expected one of a, b, got 'c'"):
        assert expected in text
    with pytest.raises(WorkflowError, match="must be at most 3"):
        check_inputs(wf, {"words": "x", "n": "4"})
    with pytest.raises(WorkflowError, match=r"input 'words' is required \(give --input words=VALUE\)"):
        check_inputs(wf, {}, hint="--input {name}=VALUE")  # the CLI's phrasing
    assert workflow_fakes.CALLS == [] and not runs.exists() and ctx.models.loaded() == {}
    assert check_inputs(wf, {"words": "x", "n": "3"}) == {"words": "x", "n": 3, "pic": None, "mode": "a"}


def test_failed_step_keeps_a_manifest_saying_so(write, ctx, fakes, tmp_path):
    wf = write("""
        name: fails
        steps:
          - id: a
            tool: echo
            with: {text: hi}
          - id: b
            tool: boom
            with: {text: "${steps.a.text}"}
          - id: c
            tool: echo
            with: {text: never}
        outputs:
          a: "${steps.a.text}"
          b: "${steps.b.text}"
        """)
    out = run_workflow(wf, {}, ctx, fakes, tmp_path / "runs")
    assert (out.status, out.failed_step, out.error) == ("failed", "b", "boom: refused 'hi'")
    manifest = json.loads(out.manifest.read_text())
    assert manifest["status"] == "failed" and manifest["failed_step"] == "b"
    assert manifest["error"] == "boom: refused 'hi'" and manifest["finished"]
    assert [(s["id"], s["status"]) for s in manifest["steps"]] == [("a", "ok"), ("b", "failed")]
    assert [c[0] for c in workflow_fakes.CALLS] == ["echo", "boom"]
    assert json.loads((out.run_dir / "outputs.json").read_text()) == {"a": "hi", "b": ""}
    assert not list(out.run_dir.glob(".*.tmp"))  # every write was atomic


def test_missing_image_from_a_step_fails_that_step(write, ctx, fakes, tmp_path):
    wf = write("""
        name: noimage
        steps:
          - id: a
            tool: echo
            with: {text: hi}
          - id: b
            tool: look
            with: {image: "${steps.a.image}"}
        """)
    out = run_workflow(wf, {}, ctx, fakes, tmp_path / "runs")
    assert out.failed_step == "b" and "step 'a' produced no image" in out.error


def test_images_land_in_the_run_folder_and_sidecar_files(write, ctx, fakes, tmp_path):
    wf = write("""
        name: pics
        inputs:
          photo: {type: image}
        steps:
          - id: p
            tool: paint
            with: {prompt: red, seed: 3, image: "${inputs.photo}"}
          - id: l
            tool: look
            with: {image: "${steps.p.images}"}
        outputs:
          picture: "${steps.p.image}"
        files:
          notes.txt: "saw ${steps.l.text}"
          notes.json: {size: "${steps.l.data.width}", picture: "${steps.p.image}"}
        """)
    out = run_workflow(wf, {"photo": str(png(tmp_path / "in.png"))}, ctx, fakes, tmp_path / "runs")
    assert out.ok, out.error
    picture = Path(out.outputs["picture"])
    assert picture.parent == out.run_dir and picture.is_file()
    assert (out.run_dir / "notes.txt").read_text() == "saw 8x8\n"
    assert json.loads((out.run_dir / "notes.json").read_text()) == {"size": 8, "picture": str(picture)}
    manifest = json.loads(out.manifest.read_text())
    assert manifest["inputs"]["photo"]["sha256"] and manifest["steps"][0]["seed"] == 3
    assert manifest["steps"][0]["image_hashes"][0]["pixels_sha256"]


def test_batch_over_a_folder_continues_past_a_broken_file(write, ctx, fakes, tmp_path):
    wf = write("""
        name: looks
        inputs:
          photo: {type: image}
        steps:
          - id: l
            tool: look
            with: {image: "${inputs.photo}"}
        outputs:
          size: "${steps.l.text}"
        """)
    folder = tmp_path / "photos"
    folder.mkdir()
    png(folder / "a.png")
    (folder / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really" * 10)
    png(folder / "c.PNG")
    (folder / "notes.txt").write_text("not an image")
    name, files = batch_input(wf, {"photo": str(folder)})
    assert name == "photo" and [f.name for f in files] == ["a.png", "b.png", "c.PNG"]
    assert [f.name for f in batch_input(wf, {"photo": str(folder / "*.png")})[1]] == ["a.png", "b.png"]
    result = run_batch(wf, {}, name, files, lambda inputs: run_workflow(wf, inputs, ctx, fakes, tmp_path / "runs"))
    assert [i.status for i in result.items] == ["ok", "failed", "ok"]
    assert result.summary == {"total": 3, "ok": 2, "failed": 1, "interrupted": 0, "skipped": 0, "not_run": 0}
    assert result.status == "failed"
    assert "b.png" in result.items[1].error and result.items[0].outputs == {"size": "12x10"}
    assert json.loads(Path(result.items[1].manifest).read_text())["status"] == "failed"
    assert [i.to_json()["file"] for i in result.items] == [str(f) for f in files]  # `run --json`'s lines
    with pytest.raises(WorkflowError, match="no images found"):
        batch_input(wf, {"photo": str(tmp_path / "empty-*.png")})


def test_replay_gives_identical_pixels_and_notices_a_difference(write, ctx, fakes, tmp_path):
    wf = write("""
        name: redo
        steps:
          - id: first
            tool: paint
            with: {prompt: a boat}
          - id: second
            tool: paint
            with: {prompt: "${steps.first.image}", image: "${steps.first.image}", strength: 0.3}
        """)
    out = run_workflow(wf, {}, ctx, fakes, tmp_path / "runs")
    assert out.ok, out.error
    seed = json.loads(out.manifest.read_text())["steps"][0]["seed"]  # picked at random by the tool
    again = replay(out.manifest, ctx, fakes, tmp_path / "replays")
    assert again.identical and again.status == "ok", again.differences
    first_new, second_call = workflow_fakes.CALLS[2], workflow_fakes.CALLS[3]
    assert first_new[1]["seed"] == seed  # the random seed was replayed explicitly
    new_image = again.steps[0]["images"][0]
    assert second_call[1]["image"] == new_image and str(again.run_dir) in new_image  # path swapped
    assert json.loads(again.manifest.read_text())["replay"] == {"identical": True, "differences": []}
    # tamper with the recorded pixels: replay must say what differs
    manifest = json.loads(out.manifest.read_text())
    manifest["steps"][1]["image_hashes"][0]["pixels_sha256"] = "0" * 64
    out.manifest.write_text(json.dumps(manifest))
    differs = replay(out.manifest, ctx, fakes, tmp_path / "replays")
    assert not differs.identical and differs.differences == [
        f"step 'second': image 1 differs in its pixels ({differs.steps[1]['images'][0]})"]


def test_replay_refuses_what_is_not_a_manifest(ctx, fakes, tmp_path):
    from visionloop.errors import VisionloopError

    bad = tmp_path / "manifest.json"
    bad.write_text('{"hello": 1}')
    with pytest.raises(VisionloopError, match="not a visionloop run manifest"):
        replay(bad, ctx, fakes, tmp_path)
    with pytest.raises(VisionloopError, match="manifest not found"):
        replay(tmp_path / "nope.json", ctx, fakes, tmp_path)


def test_run_folder_and_manifest_are_absolute_for_a_relative_out_dir(write, ctx, fakes, tmp_path, monkeypatch):
    wf = write("""
        name: rel
        steps:
          - id: p
            tool: paint
            with: {prompt: hi, seed: 1}
        """)
    monkeypatch.chdir(tmp_path)
    out = run_workflow(wf, {}, ctx, fakes, Path("runs"))
    shown = out.to_json()["manifest"]  # what `run --json` prints, beside absolute image paths
    assert Path(shown).is_absolute()
    assert Path(shown) == (tmp_path / "runs").resolve() / out.run_dir.name / "manifest.json"
    assert Path(out.steps[0]["images"][0]).parent == Path(shown).parent
    assert json.loads(Path(shown).read_text())["run_dir"] == str(Path(shown).parent)


def test_mark_interrupted_rewrites_only_a_running_manifest(write, ctx, fakes, tmp_path):
    from visionloop.workflows.manifest import mark_interrupted

    wf = write("""
        name: mark
        steps:
          - id: p
            tool: paint
            with: {prompt: hi, seed: 1}
        """)
    seen = []

    def on_run_dir(run_dir):  # called once the folder exists, before any step
        seen.append((run_dir, json.loads((run_dir / "manifest.json").read_text())))

    out = run_workflow(wf, {}, ctx, fakes, tmp_path / "runs", on_run_dir=on_run_dir)
    assert [(d, m["status"], m["steps"]) for d, m in seen] == [(out.run_dir, "running", [])]
    assert not mark_interrupted(out.run_dir)  # finished ("ok"): left alone
    stale = seen[0][1]
    stale["steps"] = [{"id": "p", "status": "running"}]
    (out.run_dir / "manifest.json").write_text(json.dumps(stale))
    assert mark_interrupted(out.run_dir, "killed")
    manifest = json.loads((out.run_dir / "manifest.json").read_text())
    assert (manifest["status"], manifest["error"], manifest["steps"][0]["status"]) == ("interrupted", "killed",
                                                                                      "interrupted")
    assert manifest["interrupted_at"] and not list(out.run_dir.glob("*.tmp*"))
    assert not mark_interrupted(tmp_path / "nowhere")
