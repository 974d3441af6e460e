"""A run's own records when writing fails (a full disk) and when they are read back broken:
a failed run ends `failed` in its manifest, a run that cannot start leaves no folder behind,
and `replay` names the field of a manifest that is wrong."""

import errno
import json
import os
import textwrap

import pytest

import workflow_fakes
from visionloop.errors import VisionloopError
from visionloop.workflows import load_workflow, run_workflow
from visionloop.workflows import manifest as records
from visionloop.workflows.replay import replay

CHAIN = """
name: chain
steps:
  - id: a
    tool: paint
    with: {prompt: one, seed: 1}
  - id: b
    tool: echo
    with: {text: two}
outputs:
  picture: "${steps.a.image}"
"""


@pytest.fixture
def chain(tmp_path, tiny_config, fakes):
    path = tmp_path / "chain.yaml"
    path.write_text(textwrap.dedent(CHAIN).lstrip("\n"))
    return load_workflow(str(path), tiny_config, fakes)


@pytest.fixture(autouse=True)
def _calls():
    workflow_fakes.CALLS.clear()


def disk_full_when(monkeypatch, full):
    """Record writes raise ENOSPC whenever `full(path, obj)` says so, like a full disk."""
    real = records.atomic_write_json

    def write(path, obj):
        if full(path, obj):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real(path, obj)

    monkeypatch.setattr(records, "atomic_write_json", write)


def on_disk(run_dir):
    return json.loads((run_dir / "manifest.json").read_text())


def test_disk_full_during_the_run_ends_failed_in_the_manifest(monkeypatch, chain, ctx, fakes, tmp_path):
    writes = []
    disk_full_when(monkeypatch, lambda path, obj: writes.append(path) or len(writes) > 1)  # after the first
    out = run_workflow(chain, {}, ctx, fakes, tmp_path / "runs")
    assert out.status == "failed" and out.failed_step == "a"
    assert out.error.startswith(f"{out.run_dir / 'manifest.json'}: cannot write: No space left on device")
    assert [c[0] for c in workflow_fakes.CALLS] == ["paint"]  # step b never ran
    manifest = on_disk(out.run_dir)  # the last atomic write failed too: marked failed in place
    assert manifest["status"] == "failed" and "No space left on device" in manifest["error"]
    assert manifest["failed_step"] == "a" and manifest["finished"]
    assert not list(out.run_dir.glob(".*.tmp"))


def test_only_the_final_write_fails_the_record_still_says_failed(monkeypatch, chain, ctx, fakes, tmp_path):
    disk_full_when(monkeypatch, lambda path, obj: path.name == "manifest.json" and obj["status"] != "running")
    out = run_workflow(chain, {}, ctx, fakes, tmp_path / "runs")
    assert out.status == "failed" and out.failed_step is None  # every step ran; the record could not be kept
    assert "manifest.json: cannot write: No space left on device" in out.error
    manifest = on_disk(out.run_dir)
    assert manifest["status"] == "failed" and "No space left on device" in manifest["error"]
    assert [s["status"] for s in manifest["steps"]] == ["ok", "ok"]  # the whole record fits in place
    assert json.loads((out.run_dir / "outputs.json").read_text()) == out.outputs


def test_disk_full_writing_outputs_fails_the_run(monkeypatch, chain, ctx, fakes, tmp_path):
    disk_full_when(monkeypatch, lambda path, obj: path.name == "outputs.json")
    out = run_workflow(chain, {}, ctx, fakes, tmp_path / "runs")
    assert out.status == "failed" and out.error == (f"{out.run_dir / 'outputs.json'}: cannot write: "
                                                    "No space left on device")
    assert on_disk(out.run_dir)["status"] == "failed" and on_disk(out.run_dir)["error"] == out.error


def test_a_run_that_cannot_start_leaves_no_folder_and_retries_leave_none(monkeypatch, chain, ctx, fakes, tmp_path):
    disk_full_when(monkeypatch, lambda path, obj: True)
    runs = tmp_path / "runs"
    for _ in range(3):  # a watcher retrying a transient error
        with pytest.raises(VisionloopError) as err:
            run_workflow(chain, {}, ctx, fakes, runs)
        message = str(err.value)
        assert "\n" not in message and message.endswith(": cannot write: No space left on device; "
                                                        "the run did not start")
    assert list(runs.iterdir()) == [] and workflow_fakes.CALLS == []


def test_cli_disk_full_at_start_is_one_line(monkeypatch, cli, tmp_path):
    disk_full_when(monkeypatch, lambda path, obj: True)
    result = cli("run", "poster", "--input", "subject=a boat", "--out", tmp_path / "runs", "--dry-run")
    assert result.code == 0  # a dry run writes nothing
    flow = tmp_path / "flow.yaml"
    flow.write_text("name: flow\nsteps:\n  - id: a\n    tool: caption\n    with: {image: x.png}\n")
    result = cli("run", flow, "--out", tmp_path / "runs")
    assert result.code == 1 and len(result.err.splitlines()) == 1
    assert result.err.startswith("error: ") and "No space left on device; the run did not start" in result.err
    assert list((tmp_path / "runs").iterdir()) == []


# --- replay of a broken manifest -------------------------------------------------------------

@pytest.fixture
def recorded(chain, ctx, fakes, tmp_path):
    """A good run's manifest, as a dict, and a function writing a changed copy of it."""
    out = run_workflow(chain, {}, ctx, fakes, tmp_path / "runs")
    assert out.ok, out.error
    good = on_disk(out.run_dir)

    def broken(change):
        data = json.loads(json.dumps(good))
        change(data)
        path = tmp_path / "broken" / "manifest.json"
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(data))
        return path

    return broken


@pytest.mark.parametrize("change, message", [
    (lambda m: m["steps"][1].update(args=["text", "two"]), "steps[1].args: expected an object or null, got an array"),
    (lambda m: m["steps"].append("step c"), "steps[2]: expected an object, got a string"),
    (lambda m: m["steps"][0].update(tool=["paint"]), "steps[0].tool: expected a string, got an array"),
    (lambda m: m["steps"][0].pop("id"), "steps[0].id: missing"),
    (lambda m: m["steps"][0].update(seed="1"), "steps[0].seed: expected a whole number or null, got a string"),
    (lambda m: m["steps"][0].update(images=[3]), "steps[0].images[0]: expected a string, got a number"),
    (lambda m: m["steps"][0].update(image_hashes=["x"]), "steps[0].image_hashes[0]: expected an object, got a string"),
    (lambda m: m.update(steps={"a": 1}), "steps: expected an array, got an object"),
    (lambda m: m.update(workflow="chain"), "workflow: expected an object, got a string"),
    (lambda m: m.update(inputs={"photo": {"value": 7, "sha256": "ab"}}),
     "inputs.photo.value: expected a file path (the input has a sha256)"),
    (lambda m: m.update(format="something/2"),
     "format: expected 'visionloop-run/1', got 'something/2' (not a visionloop run manifest)"),
])
def test_replay_names_the_broken_field(recorded, ctx, fakes, tmp_path, change, message):
    path = recorded(change)
    with pytest.raises(VisionloopError) as err:
        replay(path, ctx, fakes, tmp_path / "replays")
    assert str(err.value) == f"{path}: {message}"
    assert not (tmp_path / "replays").exists()  # nothing ran, nothing was written


def test_replay_cli_broken_manifest_and_empty_path(cli, recorded, tmp_path):
    path = recorded(lambda m: m["steps"][1].update(args=None, tool=3))
    result = cli("replay", path, "--out", tmp_path / "replays")
    assert result.code == 1 and result.err == f"error: {path}: steps[1].tool: expected a string, got a number\n"
    several = recorded(lambda m: [s.update(args=[]) for s in m["steps"]])
    assert cli("replay", several).err.endswith("steps[0].args: expected an object or null, got an array "
                                               "(and 1 more)\n")
    empty = cli("replay", "")
    assert empty.code == 1 and empty.err == ("error: replay: the manifest path is empty "
                                             "(give a manifest.json or its run folder)\n")
