"""User mistakes around workflows, each a one-line error naming the file or value and the
reason, a non-zero exit, nothing written: empty values, `~user` that names no home, names too
long, reserved sidecar names, text longer than the tool takes, and the schema module's CLI."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from visionloop.errors import UsageError
from visionloop.workflows import WorkflowError, check_inputs, check_text, load_workflow
from visionloop.workflows.plan import parse_inputs
from visionloop.workflows.schema import schema_text

ROOT = Path(__file__).resolve().parent.parent
NOBODY = "~nosuchuser-visionloop"


def problems(text, registry, config=None):
    return [str(p) for p in check_text(textwrap.dedent(text).lstrip("\n"), "wf.yaml", registry, config)[1]]


def one_line_error(result, code=1):
    assert result.code == code, (result.out, result.err)
    assert "Traceback" not in result.err and len(result.err.strip().splitlines()) == 1, result.err
    return result.err.strip()


# --- empty values -------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["", "   ", "\t"])
def test_empty_input_value_is_refused_not_the_current_folder(cli, tmp_path, example_image, monkeypatch, value):
    folder = tmp_path / "here"
    folder.mkdir()
    (folder / "a.png").write_bytes(example_image.read_bytes())  # what "." would have batched over
    monkeypatch.chdir(folder)
    result = cli("run", "alt-text", "--input", f"image={value}", "--out", tmp_path / "runs")
    err = one_line_error(result, code=2)
    assert err == (f"error: input 'image' has an empty value ({f'image={value}'!r}): give a value, "
                   "or leave the input out to use its default")
    assert not (tmp_path / "runs").exists()


def test_parse_inputs_and_check_inputs_refuse_blank_values(tiny_config, registry):
    with pytest.raises(UsageError, match=r"input 'style' has an empty value \('style= '\)"):
        parse_inputs(["image=a.png", "style= "], bad="/run: expected name=value, got {pair!r}")  # the chat's /run
    wf = load_workflow("describe-and-redraw", tiny_config, registry)
    with pytest.raises(WorkflowError) as err:  # the engine's own check (the chat and the watcher call it too)
        check_inputs(wf, {"image": "  ", "style": ""})
    lines = str(err.value).splitlines()
    assert lines == [f"{wf.source}: input 'image': expected a file path, got an empty string",
                     f"{wf.source}: input 'style': must not be empty"]


def test_empty_out_and_workflow_names(cli):
    err = one_line_error(cli("run", "alt-text", "--out", ""), code=2)  # the core CLI may say it first
    assert err.startswith("error: --out: ") and "empty" in err
    assert one_line_error(cli("run", " ")) == ("error: the workflow name is empty "
                                               "(give a workflow file, or the name of one)")


# --- ~user that names no home, names too long ------------------------------------------------------

def test_tilde_user_without_a_home_is_one_line_everywhere(cli, tmp_path, example_image):
    hint = "names no home folder (no user named 'nosuchuser-visionloop')"
    err = one_line_error(cli("run", "alt-text", "--input", f"image={NOBODY}/x.png", "--out", tmp_path / "o"))
    assert err.startswith(f"error: input 'image': {NOBODY}/x.png: '{NOBODY}' {hint}")
    err = one_line_error(cli("run", "alt-text", "--input", f"image={example_image}", "--out", f"{NOBODY}/o"))
    assert err.startswith(f"error: --out: {NOBODY}/o: '{NOBODY}' {hint}")
    err = one_line_error(cli("replay", f"{NOBODY}/run", "--out", tmp_path / "o"))
    assert err.startswith(f"error: manifest: {NOBODY}/run: '{NOBODY}' {hint}")
    err = one_line_error(cli("replay", tmp_path, "--out", f"{NOBODY}/o"))
    assert err.startswith(f"error: --out: {NOBODY}/o: '{NOBODY}'")
    err = one_line_error(cli("run", f"{NOBODY}/flow.yaml"))
    assert err.startswith(f"error: workflow: {NOBODY}/flow.yaml: '{NOBODY}' {hint}")
    # validate goes on with the other files and reports each
    result = cli("validate", f"{NOBODY}/flow.yaml", "alt-text")
    assert result.code == 1 and result.err == ""
    assert result.out.splitlines()[0].startswith(f"workflow: {NOBODY}/flow.yaml: '{NOBODY}' {hint}")
    assert result.out.splitlines()[1].endswith("alt-text.yaml: ok")
    assert not (tmp_path / "o").exists()


def test_names_too_long_are_one_line(cli, tmp_path):
    long = "x" * 300
    too_long = "a name in this path is 305 bytes long; file names are at most 255"
    assert one_line_error(cli("run", f"{long}.yaml")) == f"error: workflow: {long[:60]}…{long[-55:]}.yaml: {too_long}"
    err = one_line_error(cli("run", "alt-text", "--input", f"image={long}.png", "--out", tmp_path / "o"))
    assert err.startswith("error: input 'image': xxx") and err.endswith(too_long.replace("305", "304"))
    assert one_line_error(cli("replay", long)).endswith("a name in this path is 300 bytes long; file names are at most 255")


def test_unreadable_folders_are_one_line(cli, tmp_path, monkeypatch, example_image):
    photos, flows = tmp_path / "photos", tmp_path / "flows"
    photos.mkdir()
    flows.mkdir()
    real = Path.iterdir

    def iterdir(self):  # as for a folder without read permission (the tests may run as root)
        if self in (photos, flows):
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    real_scandir = os.scandir

    def scandir(path="."):  # the batch lists a folder with os.scandir (each entry's kind comes with it)
        if Path(path) in (photos, flows):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    err = one_line_error(cli("run", "describe-folder", "--input", f"photo={photos}", "--out", tmp_path / "o"))
    assert err == f"error: {photos}: cannot list the folder for input 'photo': Permission denied"
    config = tmp_path / "config.yaml"
    config.write_text(f"profile: tiny\nworkflows: {flows}\n")
    err = one_line_error(cli("--config", config, "workflows"))
    assert err == f"error: {flows}: cannot list the workflows folder: Permission denied"


# --- what validate knows statically ------------------------------------------------------------

def test_sidecar_files_cannot_take_the_run_records_names(fakes):
    found = problems("""
        name: x
        steps:
          - id: a
            tool: echo
            with: {text: hi}
        files:
          outputs.json: {a: "${steps.a.text}"}
          Manifest.json: "${steps.a.text}"
          notes.json: {a: "${steps.a.text}"}
        """, fakes)
    assert found == [
        "wf.yaml:7: files.outputs.json: file name 'outputs.json' is reserved: the run folder's own outputs.json "
        "would be overwritten (pick another name)",
        "wf.yaml:8: files.Manifest.json: file name 'Manifest.json' is reserved: the run folder's own manifest.json "
        "would be overwritten (pick another name)",
    ]
    schema = json.loads(schema_text())
    assert schema["properties"]["files"]["propertyNames"]["not"] == {"enum": ["manifest.json", "outputs.json"]}


def test_validate_applies_the_tools_own_text_limit(registry, tiny_config):
    from visionloop.toolkit.diffusion import MAX_PROMPT_CHARS

    huge = "a" * 800_000
    found = problems(f"""
        name: x
        inputs:
          style: {{type: text, default: "{'b' * 2500}"}}
          photo: {{type: image}}
        steps:
          - id: a
            tool: draw
            with: {{prompt: "{huge}", negative_prompt: "{'c' * 2001}", seed: 1}}
          - id: b
            tool: restyle
            with: {{image: "${{inputs.photo}}", style: "${{inputs.style}}", prompt: "${{steps.a.text}} {'d' * 2000}"}}
          - id: c
            tool: restyle
            with: {{image: "${{inputs.photo}}", prompt: "${{steps.a.text}} {'d' * 1990}"}}
        """, registry, tiny_config)
    assert found == [
        f"wf.yaml:8: steps[0].with.prompt: too long (800000 characters; at most {MAX_PROMPT_CHARS})",
        f"wf.yaml:8: steps[0].with.negative_prompt: too long (2001 characters; at most {MAX_PROMPT_CHARS})",
        f"wf.yaml:11: steps[1].with.style: ${{inputs.style}}: its default '{'b' * 36}... "
        f"does not fit restyle's 'style': too long (2500 characters; at most {MAX_PROMPT_CHARS})",
        "wf.yaml:11: steps[1].with.prompt: too long (2001 characters before its references are filled in; "
        f"at most {MAX_PROMPT_CHARS})",
    ]  # step c: 1991 characters and a reference may fit: known at run time


def test_validate_applies_the_tools_own_scheduler_names(registry):
    from visionloop.models.schedulers import SCHEDULERS

    found = problems("""
        name: x
        steps:
          - id: a
            tool: draw
            with: {prompt: hi, scheduler: eular}
          - id: b
            tool: draw
            with: {prompt: hi, scheduler: DPM++ 2M Karras}
        """, registry)
    assert found == [f"wf.yaml:5: steps[0].with.scheduler: unknown scheduler 'eular' (known: {', '.join(SCHEDULERS)})"]


def test_the_same_limit_at_run_time_from_the_cli(cli):
    result = cli("draw", "a" * 2001)
    assert one_line_error(result) == "error: prompt: too long (2001 characters; at most 2000)"


# --- python -m visionloop.workflows -------------------------------------------------------------------

def schema_module(*args, cwd):
    return subprocess.run([sys.executable, "-m", "visionloop.workflows", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def test_schema_module_help_writes_nothing(tmp_path):
    shown = schema_module("--help", cwd=tmp_path)
    assert shown.returncode == 0 and "Write the JSON Schema of visionloop workflow files" in shown.stdout
    assert list(tmp_path.iterdir()) == []  # no file named --help
    assert schema_module("--hepl", cwd=tmp_path).returncode == 2 and list(tmp_path.iterdir()) == []


def test_schema_module_writes_the_schema_or_says_why_not(tmp_path):
    target = tmp_path / "my-schema.json"
    done = schema_module(target, cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == str(target)
    assert target.read_text(encoding="utf-8") == schema_text()
    printed = schema_module("-", cwd=tmp_path)
    assert printed.returncode == 0 and printed.stdout == schema_text()
    for bad, reason in ((tmp_path / "no" / "such" / "dir.json", "cannot write the schema: No such file or directory"),
                        (tmp_path, f"is a folder; give a file name, e.g. {tmp_path / 'schema.json'}"),
                        ("", "the output path is empty")):
        result = schema_module(bad, cwd=tmp_path)
        assert result.returncode == 1 and len(result.stderr.splitlines()) == 1, result.stderr
        assert result.stderr.startswith("python -m visionloop.workflows: error: ") and reason in result.stderr
        assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my-schema.json"]
