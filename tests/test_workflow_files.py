"""Workflow files: strict YAML (syntax, duplicate keys, tags, aliases, limits), finding a workflow by
name or path, the `validate` command and the published JSON schema. No model is loaded."""

import json
import sys
import textwrap
from pathlib import Path

import pytest

from visionloop.workflows import WorkflowError, check_text, load_workflow
from visionloop.workflows.schema import schema_text
from json_lines import parse

ROOT = Path(__file__).resolve().parent.parent


def problems(text, registry, source="wf.yaml"):
    spec, found = check_text(textwrap.dedent(text).lstrip("\n"), source, registry)
    assert (spec is None) == bool(found)
    return [str(p) for p in found]


def test_yaml_syntax_error_has_its_line(fakes):
    assert problems("name: x\nsteps:\n  - id: a\n    tool: [echo\n", fakes)[0].startswith("wf.yaml:5: (top): ")


def test_duplicate_key_names_both_lines(fakes):
    found = problems("""
        name: x
        steps:
          - id: a
            tool: echo
            with:
              text: one
              text: two
        """, fakes)
    assert found == ["wf.yaml:7: steps[0].with: duplicate key 'text' (first on line 6)"]


def test_python_tag_is_rejected_and_nothing_runs(fakes, tmp_path):
    marker = tmp_path / "pwned"
    text = f"""
        name: x
        steps:
          - id: a
            tool: echo
            with:
              text: !!python/object/apply:os.system ["touch {marker}"]
        """
    found = problems(text, fakes)
    assert len(found) == 1 and found[0].startswith("wf.yaml:6: ") and "tag not allowed" in found[0]
    assert not marker.exists()


def test_aliases_are_refused(fakes):
    found = problems("name: &n x\nsteps:\n  - id: a\n    tool: echo\n    with: {text: *n}\n", fakes)
    assert found and "aliases" in found[0] and found[0].startswith("wf.yaml:5:")


def test_limits_and_nesting(fakes):
    deep = "name: x\nsteps:\n  - id: a\n    tool: echo\n    with: {text: " + "[" * 60 + "]" * 60 + "}\n"
    assert "nested deeper than" in problems(deep, fakes)[0]
    assert "larger than" in problems("name: x\n#" + "x" * 1_100_000 + "\n", fakes)[0]


def test_load_workflow_by_name_and_error_type(tiny_config, fakes, tmp_path):
    from visionloop.errors import VisionloopError

    wf = load_workflow("alt-text", tiny_config, fakes)
    assert wf.name == "alt-text" and len(wf.sha256) == 64
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nsteps:\n  - id: a\n    tool: nope\n  - id: b\n    tool: echo\n    with: {txt: 1}\n")
    with pytest.raises(WorkflowError) as err:
        load_workflow(str(bad), tiny_config, fakes)
    assert isinstance(err.value, VisionloopError)
    lines = str(err.value).splitlines()
    assert lines[0].startswith(f"{bad}:4: steps[0].tool: unknown tool 'nope'")
    assert lines[1].startswith(f"{bad}:7: steps[1].with.txt: echo takes no argument 'txt'")
    with pytest.raises(WorkflowError, match="workflow not found"):
        load_workflow("no-such-workflow", tiny_config, fakes)


def test_validate_command_exit_codes_and_no_model_loaded(tmp_path):
    from conftest import run_subprocess

    bad = tmp_path / "poster.yaml"
    bad.write_text("name: poster\nsteps:\n  - id: a\n    tool: caption\n    with: {image: x.png}\n"
                   "  - id: b\n    tool: paint\n")
    code = ("import sys\nfrom visionloop.cli.app import main\nrc = main(sys.argv[1:])\n"
            "print('HEAVY', [m for m in ('torch', 'transformers', 'diffusers') if m in sys.modules])\n"
            "sys.exit(rc)\n")
    import subprocess

    proc = subprocess.run([sys.executable, "-c", code, "validate", str(bad), "alt-text"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert f"{bad}:7: steps[1].tool: unknown tool 'paint' (tools: " in proc.stdout
    assert "alt-text.yaml: ok" in proc.stdout and "HEAVY []" in proc.stdout and "Traceback" not in proc.stderr
    ok = run_subprocess("validate", *sorted((ROOT / "workflows").glob("*.yaml")), "--json")
    entries, summary = parse(ok.stdout)
    assert ok.returncode == 0 and all(e["valid"] and e["error"] is None for e in entries)
    assert summary["ok"] == summary["results"] == len(entries) and summary["exit"] == 0


def test_schema_json_is_up_to_date():
    shipped = (ROOT / "workflows" / "schema.json").read_text(encoding="utf-8")
    assert shipped == schema_text(), "workflows/schema.json is stale: run `python -m visionloop.workflows`"
    schema = json.loads(shipped)
    assert schema["additionalProperties"] is False and set(schema["required"]) == {"name", "steps"}
    assert "with" in schema["$defs"]["StepSpec"]["properties"]


def test_validate_json_path_is_always_a_string(cli, tmp_path):
    top = tmp_path / "list.yaml"
    top.write_text("- a\n")  # a problem with the file as a whole
    field = tmp_path / "noname.yaml"
    field.write_text("steps:\n  - id: a\n    tool: caption\n    with: {image: x.png}\n")
    result = cli("validate", top, field, tmp_path / "missing.yaml", "--json")
    assert result.code == 1
    entries, summary = parse(result.out)
    assert summary["failed"] == 3 and summary["exit"] == 1 and not any(e["valid"] for e in entries)
    assert all(e["error"] == e["problems"][0]["text"] for e in entries)  # one problem each
    report = {Path(e["file"]).name: e["problems"] for e in entries}
    paths = [p["path"] for problems in report.values() for p in problems]
    assert all(isinstance(p, str) for p in paths), paths
    assert report["list.yaml"][0]["path"] == "" and "must be a mapping" in report["list.yaml"][0]["message"]
    assert report["missing.yaml"][0]["path"] == ""
    assert "name" in [p["path"] for p in report["noname.yaml"]]


def test_named_examples_are_found_from_any_folder(tmp_path, monkeypatch, registry):
    """With no workflows folder where the command runs, a name falls back to the examples
    that ship beside the package."""
    from visionloop.config import load_config
    from visionloop.workflows.validate import BUNDLED, find_workflow

    cfg = tmp_path / "c.yaml"
    cfg.write_text("profile: tiny\n")
    monkeypatch.chdir(tmp_path)
    config = load_config(str(cfg))
    assert find_workflow("alt-text", config) == BUNDLED / "alt-text.yaml"
    with pytest.raises(WorkflowError, match=r"nope: workflow not found .*" + str(BUNDLED)):
        find_workflow("nope", config)
