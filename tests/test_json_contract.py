"""One `--json` contract for every command (README, "Usage"), checked from one table.

Every command prints JSON Lines: one object per result, then exactly one `{"summary": {...}}`
line holding at least `command`, `results`, `ok`, `failed`, `exit` (the exit code returned) and
`error`. Nothing else goes to stdout. An error lands in a result's `error` (null when fine), or
in the summary's `error` when the command failed as a whole, and is said on stderr too.

The real CLI runs in-process on the tiny profile, with the fake tools of `workflow_fakes.py`
for the workflow and watch commands (no model loads there).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from PIL import Image

from json_lines import parse

HERE = Path(__file__).resolve().parent

BASE = {"command", "results", "ok", "failed", "exit", "error"}
TOOL = {"tool", "text", "images", "data", "error"}  # ToolResult.to_json(), exactly
INFO = {"file", "format", "width", "height", "parameters", "visionloop", "error"}
TOOLS = {"name", "description", "inputs", "returns", "error"}
VALIDATE = {"file", "name", "valid", "problems", "error"}
WORKFLOWS = {"name", "file", "source", "shadowed_by", "valid", "description", "inputs", "steps", "problems", "error"}
RUN = {"workflow", "file", "status", "outputs", "steps", "manifest", "error", "failed_step"}
REPLAY = RUN | {"replay_of", "identical", "differences"}
PLAN = {"workflow", "file", "sha256", "status", "inputs", "batch", "steps", "outputs", "files", "models", "device",
        "dtype", "out", "error"}
WATCH = {"file", "rule", "status", "run", "outputs", "moved_to", "error"}
STATUS = {"rule", "output", "counts", "error"}

RUN_SUMMARY = {"interrupted", "skipped", "not_run", "workflow", "status"}
REPLAY_SUMMARY = {"workflow", "status", "identical"}
WATCH_SUMMARY = {"unfinished", "skipped"}
WATCH_ARGS = ("--workflow", "{look_wf}", "--input", "photo", "--out", "{watch_out}", "--settle", "0.05")


@dataclass(frozen=True)
class Case:
    args: tuple  # the command line; a word "{name}" is filled in from the `world` fixture
    lines: set | None  # the keys of every result line (None: the command gives none)
    summary: set  # the summary's keys besides BASE
    exit: int
    error: str | None = None  # where the error lands: "line", "summary", "broken" (None: no error)
    count: int | None = None  # result lines expected (default: 1 with `lines`, else 0; -1: some)


CASES = {
    # tool commands (the tiny models)
    "caption": Case(("caption", "{image}"), TOOL, set(), 0),
    "caption, missing file": Case(("caption", "{missing}"), TOOL, set(), 1, "line"),
    "caption, one of two missing": Case(("caption", "{image}", "{missing}"), TOOL, set(), 1, "line", 2),
    # core commands
    "info": Case(("info", "{image}"), INFO, set(), 0),
    "info, missing file": Case(("info", "{missing}"), INFO, set(), 1, "line"),
    "info, one of two missing": Case(("info", "{image}", "{missing}"), INFO, set(), 1, "line", 2),
    "tools": Case(("tools",), TOOLS, {"broken"}, 0, count=-1),
    "tools, a broken plugin": Case(("--config", "{broken_config}", "tools"), TOOLS, {"broken"}, 0, "broken", -1),
    # workflow files
    "validate": Case(("validate", "{echo_wf}"), VALIDATE, set(), 0),
    "validate, invalid file": Case(("validate", "{echo_wf}", "{bad_wf}"), VALIDATE, set(), 1, "line", 2),
    "workflows": Case(("workflows",), WORKFLOWS, set(), 0, count=-1),
    "workflows, an invalid one": Case(("--config", "{bad_flows_config}", "workflows"), WORKFLOWS, set(), 0,
                                      "line", -1),
    "workflows, unreadable folder": Case(("workflows", "{unreadable}"), None, set(), 1, "summary"),
    # runs
    "run": Case(("run", "{echo_wf}"), RUN, RUN_SUMMARY, 0),
    "run, a folder": Case(("run", "{look_wf}", "--input", "photo={photos}"), RUN, RUN_SUMMARY, 0, count=2),
    "run, a folder with a broken file": Case(("run", "{look_wf}", "--input", "photo={broken_photos}"), RUN,
                                             RUN_SUMMARY, 1, "line", 2),
    "run, a failing step": Case(("run", "{boom_wf}"), RUN, RUN_SUMMARY, 1, "line"),
    "run, no such workflow": Case(("run", "no-such-workflow"), None, RUN_SUMMARY, 1, "summary"),
    "run --dry-run": Case(("run", "{echo_wf}", "--dry-run"), PLAN, RUN_SUMMARY, 0),
    "replay": Case(("replay", "{manifest}"), REPLAY, REPLAY_SUMMARY, 0),
    "replay, no manifest": Case(("replay", "{missing}"), None, REPLAY_SUMMARY, 1, "summary"),
    # watching
    "watch --once": Case(("watch", "{inbox}", *WATCH_ARGS, "--once"), WATCH, WATCH_SUMMARY, 0),
    "watch --once, a broken file": Case(("watch", "{broken_inbox}", *WATCH_ARGS, "--once"), WATCH, WATCH_SUMMARY,
                                        1, "line"),
    "watch --once, no rules": Case(("watch", "--once"), None, WATCH_SUMMARY, 1, "summary"),
    "watch --status": Case(("watch", "{inbox}", *WATCH_ARGS, "--status"), STATUS, WATCH_SUMMARY, 0),
    "watch --status, no rules": Case(("watch", "--status"), None, WATCH_SUMMARY, 1, "summary"),
}

COMMANDS = {"caption", "info", "tools", "validate", "workflows", "run", "replay", "watch"}

ECHO = "name: echo\nsteps:\n  - {id: a, tool: echo, with: {text: hi}}\noutputs:\n  said: ${steps.a.text}\n"
LOOK = ('name: look\ninputs:\n  photo: {type: image}\nsteps:\n  - {id: l, tool: look, with: {image: '
        '"${inputs.photo}"}}\noutputs:\n  size: ${steps.l.text}\n')
BOOM = "name: boom\nsteps:\n  - {id: a, tool: boom}\n"


def _config(path: Path, tiny_cache, root: Path, **more) -> Path:
    path.write_text(yaml.safe_dump({"profile": "tiny", "cache_dir": str(tiny_cache), "output": str(root / "o"),
                                    "plugins": {"paths": [str(root / "plugins")]}, **more}))
    return path


@pytest.fixture
def world(tmp_path, tiny_cache, example_image, cli, monkeypatch):
    """The files the table names, and `run(*args)`: the CLI with a config that has the fake tools."""
    root = tmp_path
    (root / "plugins").mkdir()
    shutil.copy(HERE / "workflow_fakes.py", root / "plugins" / "workflow_fakes.py")
    flows = root / "flows"
    flows.mkdir()
    for name, text in (("echo", ECHO), ("look", LOOK), ("boom", BOOM)):
        (flows / f"{name}.yaml").write_text(text)
    config = _config(root / "config.yaml", tiny_cache, root, workflows=str(flows))
    bad_flows = root / "bad-flows"
    bad_flows.mkdir()
    (bad_flows / "broken.yaml").write_text("name: broken\nsteps:\n  - {id: a, tool: nope}\n")
    (root / "broken-plugins").mkdir()
    (root / "broken-plugins" / "broken.py").write_text("import no_such_module_xyz\n")
    photos, broken_photos, inbox, broken_inbox = (root / n for n in ("photos", "broken-photos", "in", "broken-in"))
    for folder in (photos, broken_photos, inbox, broken_inbox):
        folder.mkdir()
    for i in range(2):
        Image.new("RGB", (12, 10), (i, 0, 0)).save(photos / f"{i}.png")
    shutil.copy(photos / "0.png", broken_photos / "0.png")
    shutil.copy(photos / "0.png", inbox / "0.png")
    for folder in (broken_photos, broken_inbox):
        (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")

    def run(*args):
        return cli("--config", config, *args)

    def manifest():
        result = run("run", flows / "echo.yaml", "--json", "--out", root / "first")
        assert result.code == 0, result.err
        (line,), _ = parse(result.out)
        return line["manifest"]

    def unreadable():  # `workflows` given a folder it cannot list (root reads every folder: pretend)
        import visionloop.workflows.library as library

        def refuse(config):
            raise PermissionError(13, "Permission denied", str(flows))

        monkeypatch.setattr(library, "list_workflows", refuse)
        return None  # no word on the command line

    names = {
        "image": lambda: example_image, "missing": lambda: root / "missing.png",
        "echo_wf": lambda: flows / "echo.yaml", "look_wf": lambda: flows / "look.yaml",
        "boom_wf": lambda: flows / "boom.yaml",
        "bad_wf": lambda: bad_flows / "broken.yaml", "photos": lambda: photos, "broken_photos": lambda: broken_photos,
        "inbox": lambda: inbox, "broken_inbox": lambda: broken_inbox, "watch_out": lambda: root / "watched",
        "manifest": manifest, "unreadable": unreadable,
        "broken_config": lambda: _config(root / "broken.yaml", tiny_cache, root,
                                         plugins={"paths": [str(root / "plugins"), str(root / "broken-plugins")]}),
        "bad_flows_config": lambda: _config(root / "bad-flows.yaml", tiny_cache, root, workflows=str(bad_flows)),
    }

    def fill(args):
        out = []
        for word in args:
            if word.startswith("{") and word.endswith("}"):
                word = names[word[1:-1]]()
                if word is None:
                    continue
            elif "={" in word:  # --input photo={photos}
                key, _, ref = word.partition("=")
                word = f"{key}={names[ref[1:-1]]()}"
            out.append(str(word))
        return out

    return run, fill


@pytest.mark.parametrize("name", list(CASES))
def test_every_command_follows_the_json_contract(world, name):
    case = CASES[name]
    run, fill = world
    args = fill(case.args)
    result = run(*args, "--json")
    assert "Traceback" not in result.err, result.err
    lines, summary = parse(result.out)  # every line one object; the last, and only it, the summary
    # the summary: the command, the counts, the exit code returned
    assert set(summary) == BASE | case.summary, summary
    assert summary["command"] == next(a for a in args if a in COMMANDS)
    assert summary["exit"] == result.code == case.exit, (result.out, result.err)
    assert summary["results"] == len(lines)
    assert summary["ok"] + summary["failed"] <= len(lines)
    # the result lines: the same keys, line after line
    expected = case.count if case.count is not None else (1 if case.lines else 0)
    assert len(lines) == expected or (expected == -1 and lines), lines
    for line in lines:
        assert set(line) == case.lines, line
    # the errors: in `error`, and said on stderr
    said = [e for e in result.err.splitlines() if e.startswith("error: ")]
    if case.error is None:
        assert all(line["error"] is None for line in lines) and summary["error"] is None, result.out
        assert not said, result.err
    elif case.error == "line":
        failed = [line for line in lines if line["error"]]
        assert failed and summary["error"] is None
        assert len(said) == len(failed) and all(isinstance(line["error"], str) for line in failed), result.err
    elif case.error == "summary":
        assert lines == [] and isinstance(summary["error"], str) and summary["error"]
        assert len(said) == 1 and summary["error"].splitlines()[0] in said[0], result.err
    else:  # a broken plugin: `tools` still works (exit 0) and names it
        assert [b["plugin"] for b in summary["broken"]] and "no_such_module_xyz" in summary["broken"][0]["error"]


def test_numbers_and_names_are_the_same_everywhere(world, example_image):
    run, fill = world
    (info,), _ = parse(run("info", example_image, "--json").out)
    with Image.open(example_image) as img:
        assert (info["width"], info["height"]) == img.size  # integers, as a tool's data gives them
    assert "size" not in info
    (ok, bad), summary = parse(run("validate", *fill(("{echo_wf}", "{bad_wf}")), "--json").out)
    assert (ok["valid"], bad["valid"]) == (True, False) and ok["problems"] == []
    assert bad["error"] == bad["problems"][0]["text"] and summary["ok"] == summary["failed"] == 1
    listed, _ = parse(run("--config", fill(("{bad_flows_config}",))[0], "workflows", "--json").out)
    (broken,) = [w for w in listed if w["name"] == "broken"]
    assert broken["valid"] is False and broken["problems"][0]["text"] == broken["error"]


def test_one_input_and_a_folder_give_the_same_lines(world):
    run, fill = world
    photos = fill(("{photos}",))[0]
    single, one_summary = parse(run("run", *fill(("{look_wf}",)), "--input", f"photo={photos}/0.png", "--json").out)
    # --rerun: 0.png's run above finished ok, so without it the batch would skip 0.png (resuming)
    batch, batch_summary = parse(run("run", *fill(("{look_wf}",)), "--input", f"photo={photos}", "--json",
                                     "--rerun").out)
    assert set(single[0]) == set(batch[0]) and set(one_summary) == set(batch_summary)
    assert single[0]["file"] == batch[0]["file"] == f"{photos}/0.png"
    assert [(line["status"], line["outputs"]) for line in batch] == [("ok", {"size": "12x10"})] * 2
    assert batch_summary["ok"] == 2 and batch_summary["status"] == "ok"


def test_batch_items_are_heard_as_each_ends(tmp_path, tiny_config, fakes):
    """`run --json` prints a batch item's line when it ends, not all of them at the end."""
    from visionloop.workflows import load_workflow
    from visionloop.workflows.batch import run_batch
    from visionloop.workflows.engine import WorkflowOutcome

    wf_path = tmp_path / "look.yaml"
    wf_path.write_text(LOOK)
    wf = load_workflow(str(wf_path), tiny_config, fakes)
    heard, ran = [], []

    def run_one(inputs):
        assert len(heard) == len(ran)  # the item before this one was heard before this one ran
        ran.append(inputs["photo"])
        return WorkflowOutcome("look", "ok", tmp_path / f"run-{len(ran)}")

    run_batch(wf, {}, "photo", [tmp_path / "a.png", tmp_path / "b.png"], run_one, on_item=heard.append)
    assert [i.file for i in heard] == ran == [str(tmp_path / "a.png"), str(tmp_path / "b.png")]
