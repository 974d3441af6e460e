"""Second round of a new user's mistakes and faults around workflows: bytes that are not YAML
text, names and references that cannot work, replaying what is not a manifest, a bad --out
with a batch, and Ctrl-C in the middle of a run or a batch (the summary and --json survive)."""

import json
import os
import shutil
import textwrap
from pathlib import Path

import pytest
import yaml
from PIL import Image

from visionloop.errors import VisionloopError
from visionloop.workflows import WorkflowError, check_inputs, check_text, load_workflow
from visionloop.workflows.batch import BatchOutcome, run_batch
from visionloop.workflows.replay import read_manifest
from json_lines import one, parse

HERE = Path(__file__).resolve().parent


def problems(text, registry):
    return [str(p) for p in check_text(textwrap.dedent(text).lstrip("\n"), "wf.yaml", registry)[1]]


def one_line(result, code=1):
    assert result.code == code, (result.out, result.err)
    assert "Traceback" not in result.err and len(result.err.strip().splitlines()) == 1, result.err
    return result.err.strip()


@pytest.fixture
def fake_cli(cli, tmp_path, tiny_cache):
    """`cli` with a config whose plugins folder holds the fake tools (no model loads)."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    shutil.copy(HERE / "workflow_fakes.py", plugins / "workflow_fakes.py")
    config = tmp_path / "fake-config.yaml"
    config.write_text(yaml.safe_dump({"profile": "tiny", "cache_dir": str(tiny_cache), "output": str(tmp_path / "o"),
                                      "plugins": {"paths": [str(plugins)]}}))
    return lambda *args: cli("--config", config, *args)


# --- bytes that are not YAML text -----------------------------------------------------------

def test_control_characters_are_one_line_with_their_line(cli, tmp_path):
    wf = tmp_path / "nul.yaml"
    wf.write_bytes(b"name: x\nsteps:\n  - id: a\x00\n")
    result = cli("validate", wf)  # validate reports problems on stdout
    assert result.code == 1 and result.err == ""
    assert result.out.strip() == f"{wf}:3: (top): character 0x0000 is not allowed in YAML (is this a binary file?)"
    assert one_line(cli("run", wf)) == f"error: {wf}:3: (top): character 0x0000 is not allowed in YAML (is this a binary file?)"


def test_text_that_is_not_utf8_names_the_line_or_the_encoding(cli, tmp_path):
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("name: x\n# ok\ndescription: café\n".encode("latin-1"))
    assert cli("validate", latin).out.strip() == (f"{latin}:3: (top): not UTF-8 text (byte 0xe9 cannot start or "
                                                  "continue a character); save it as UTF-8")
    wide = tmp_path / "wide.yaml"
    wide.write_bytes("name: x\n".encode("utf-16"))
    assert cli("validate", wide).out.strip() == f"{wide}:1: (top): the file is UTF-16 text; save it as UTF-8"


# --- names and references ----------------------------------------------------------------------

def test_names_that_break_the_rule_say_what_they_are_and_the_rule(fakes):
    found = problems("""
        name: n
        steps:
          - id: a.b
            tool: echo
            with: {text: x}
        outputs:
          5: "${steps.a.b.text}"
        """, fakes)
    assert "wf.yaml:3: steps[0].id: step id 'a.b' must start with a letter or _ and hold only letters, digits, _ or -" in found
    assert not [p for p in found if "[key]" in p or "String should match pattern" in p], found


def test_a_reference_in_a_key_is_refused_not_written_literally(fakes):
    found = problems("""
        name: k
        inputs:
          who: {type: text}
        steps:
          - id: a
            tool: echo
            with: {text: "${inputs.who}"}
        files:
          out.json: {"${inputs.who}": "${steps.a.text}"}
        """, fakes)
    assert found == ["wf.yaml:9: files.out.json: '${inputs.who}': references are filled in values only, not in names (keys)"]


def test_a_duplicated_step_id_is_reported_once_not_as_a_self_reference(fakes):
    found = problems("""
        name: d
        steps:
          - id: a
            tool: echo
            with: {text: x}
          - id: a
            tool: echo
            with: {text: "${steps.a.text}"}
        """, fakes)
    assert found == ["wf.yaml:6: steps[1].id: duplicate step id 'a' (also steps[0])"]


def test_an_unknown_input_name_gets_a_suggestion(tmp_path, tiny_config, fakes):
    path = tmp_path / "wf.yaml"
    path.write_text("name: s\ninputs:\n  words: {type: text}\nsteps:\n  - {id: a, tool: echo, with: {text: x}}\n")
    wf = load_workflow(str(path), tiny_config, fakes)
    with pytest.raises(WorkflowError) as err:
        check_inputs(wf, {"word": "hi", "words": "hi"})
    assert str(err.value) == f"{path}: unknown input 'word' (did you mean 'words'?) (inputs: words)"


# --- replay ------------------------------------------------------------------------------------

def test_replay_reads_only_a_regular_file_of_bounded_size(tmp_path, monkeypatch):
    import visionloop.workflows.replay as replay_module

    with pytest.raises(VisionloopError, match=r"^/dev/null: not a readable run manifest: is a device, not a regular file$"):
        read_manifest("/dev/null")
    big = tmp_path / "manifest.json"
    big.write_text(json.dumps({"format": "visionloop-run/1", "steps": [], "pad": "x" * 500}))
    monkeypatch.setattr(replay_module, "MAX_MANIFEST_BYTES", 100)
    with pytest.raises(VisionloopError, match=r"not a readable run manifest: file is larger than 0 kB"):
        read_manifest(big)


def test_replay_refuses_a_manifest_with_no_steps(tmp_path):
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"format": "visionloop-run/1", "status": "ok", "workflow": {}, "steps": []}))
    with pytest.raises(VisionloopError) as err:
        read_manifest(path)
    assert str(err.value) == f"{path}: steps: empty (no recorded call to replay)"


def test_replaying_a_run_that_never_finished_says_so(fake_cli, tmp_path):
    wf = tmp_path / "wf.yaml"
    wf.write_text("name: r\nsteps:\n  - {id: a, tool: echo, with: {text: hi}}\n")
    run = one(fake_cli("run", wf, "--json", "--out", tmp_path / "runs").out)
    manifest = json.loads(Path(run["manifest"]).read_text())
    manifest["status"] = "running"  # killed before its final write
    Path(run["manifest"]).write_text(json.dumps(manifest))
    again = fake_cli("replay", run["manifest"], "--out", tmp_path / "again")
    assert again.code == 1
    assert again.out.splitlines()[0] == ("the same calls gave the same results, but the original run did not "
                                         "finish (its status is 'running')")


# --- --out and Ctrl-C ----------------------------------------------------------------------------

def test_an_out_that_is_a_file_fails_the_batch_once_before_it_starts(fake_cli, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        Image.new("RGB", (8, 8), (i, 0, 0)).save(photos / f"{i}.png")
    wf = tmp_path / "wf.yaml"
    wf.write_text("name: b\ninputs:\n  photo: {type: image}\nsteps:\n  - {id: a, tool: look, with: {image: "
                  '"${inputs.photo}"}}\n')
    taken = tmp_path / "taken"
    taken.write_text("not a folder")
    result = fake_cli("run", wf, "--input", f"photo={photos}", "--out", taken)
    assert one_line(result).startswith(f"error: {taken}: ") and result.out == ""
    assert taken.read_text() == "not a folder"


def test_ctrl_c_in_a_batch_keeps_what_was_done(tmp_path, tiny_config, fakes):
    from visionloop.workflows.batch import RunInterrupted

    wf_path = tmp_path / "wf.yaml"
    wf_path.write_text("name: b\ninputs:\n  photo: {type: image}\nsteps:\n  - {id: a, tool: look, with: {image: "
                       '"${inputs.photo}"}}\n')
    wf = load_workflow(str(wf_path), tiny_config, fakes)
    files = [tmp_path / f"{i}.png" for i in range(4)]
    done = []

    def run_one(inputs):
        if len(done) == 1:
            raise RunInterrupted(tmp_path / "run-2")
        done.append(inputs["photo"])
        from visionloop.workflows.engine import WorkflowOutcome
        return WorkflowOutcome("b", "ok", tmp_path / "run-1", manifest=tmp_path / "run-1" / "manifest.json")

    result = run_batch(wf, {}, "photo", files, run_one)
    assert isinstance(result, BatchOutcome) and result.status == "interrupted"
    assert [i.status for i in result.items] == ["ok", "interrupted", "not_run", "not_run"]
    assert result.items[1].manifest == str(tmp_path / "run-2" / "manifest.json")
    assert result.summary == {"total": 4, "ok": 1, "failed": 0, "interrupted": 1, "skipped": 0, "not_run": 2}


@pytest.mark.parametrize("batch", [False, True])
def test_ctrl_c_during_a_run_still_prints_its_lines_and_the_summary(fake_cli, tmp_path, monkeypatch, batch):
    import visionloop.loop

    real_wait = visionloop.loop.wait

    def wait_then_ctrl_c(loop, future):  # Ctrl-C as the job ends: wait() re-raises it after the job stopped
        real_wait(loop, future)
        raise KeyboardInterrupt

    monkeypatch.setattr(visionloop.loop, "wait", wait_then_ctrl_c)
    photo = tmp_path / "a.png"
    Image.new("RGB", (8, 8)).save(photo)
    if batch:
        shutil.copy(photo, tmp_path / "b.png")
    wf = tmp_path / "wf.yaml"
    wf.write_text("name: c\ninputs:\n  photo: {type: image}\nsteps:\n  - {id: a, tool: look, with: {image: "
                  '"${inputs.photo}"}}\n')
    given = f"photo={tmp_path / '*.png'}" if batch else f"photo={photo}"
    result = fake_cli("run", wf, "--input", given, "--json", "--out", tmp_path / "runs")
    assert result.code == 130 and result.err.strip() == "interrupted"
    lines, summary = parse(result.out)  # the same shape for one input and for a batch
    assert [i["status"] for i in lines] == (["interrupted", "not_run"] if batch else ["interrupted"])
    assert all(set(i) == set(lines[0]) for i in lines) and lines[0]["file"] == str(photo)
    assert lines[0]["steps"] and lines[0]["error"] == "interrupted (Ctrl-C)"
    assert summary == {"command": "run", "results": len(lines), "ok": 0, "failed": 0, "interrupted": 1,
                       "skipped": 0, "not_run": len(lines) - 1, "workflow": "c", "status": "interrupted", "exit": 130,
                       "error": None}
    assert os.path.isfile(lines[0]["manifest"])


def test_a_second_document_and_tabs_say_what_to_do(fakes):
    assert problems("name: a\nsteps: []\n---\nname: b\n", fakes) == [
        "wf.yaml:3: (top): a second YAML document ('---'): a file holds one document"]
    assert problems("name: x\nsteps:\n\t- id: a\n", fakes) == [
        "wf.yaml:3: (top): found character '\\t' that cannot start any token (indent with spaces: YAML does not "
        "allow tabs there)"]
