"""The command line: fast start without torch, global flags anywhere, exit codes, --json."""

import sys

from conftest import run_subprocess
from json_lines import one, parse


def test_help_and_tools_import_no_heavy_library():
    import subprocess

    code = ("import sys\n"
            "from visionloop.cli.app import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "print('HEAVY', [m for m in ('torch', 'transformers', 'diffusers') if m in sys.modules])\n")
    for args in (["--help"], ["tools"], ["tools", "--json"], ["caption", "--help"]):
        proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
        assert "HEAVY []" in proc.stdout, (args, proc.stdout[-300:], proc.stderr[-300:])


def test_python_m_agent_help():
    proc = run_subprocess("--help")
    assert proc.returncode == 0 and "caption" in proc.stdout and "usage: visionloop" in proc.stdout


def test_usage_errors_exit_2(cli):
    assert cli("see").code == 2
    result = cli("no-such-command")
    assert result.code == 2 and "invalid choice" in result.err
    assert cli("caption", "x.png", "--detail", "huge").code == 2  # outside the choices: usage


def test_global_flags_before_or_after_subcommand(cli, example_image, tmp_path):
    before = cli("--json", "--out", tmp_path, "caption", example_image)
    after = cli("caption", example_image, "--json", "--out", tmp_path)
    assert before.code == after.code == 0
    assert one(before.out)["text"] == one(after.out)["text"]


def test_see_q_is_question_and_quiet_still_works(cli, example_image, tmp_path, monkeypatch, tiny_config, registry):
    import argparse

    from visionloop.cli.app import App

    result = cli("see", example_image, "-q", "what is this?", "--quiet", "--json")
    assert result.code == 0, result.err
    assert one(result.out)["data"]["question"] == "what is this?"  # see's -q is its question
    # what --quiet suppresses: notes on stderr (a prompt longer than the text encoder reads gives one)...
    long = " ".join(["lighthouse"] * 100)
    loud = cli("draw", long, "--seed", "1", "--steps", "1", "--out", tmp_path / "o")
    quiet = cli("draw", long, "--seed", "1", "--steps", "1", "--out", tmp_path / "o", "--quiet")
    assert loud.code == quiet.code == 0, (loud.err, quiet.err)
    assert "note: prompt is " in loud.err
    assert quiet.err == ""
    # ... and what it keeps: the result on stdout, and errors
    assert quiet.out.strip().endswith(".png") and len(quiet.out.splitlines()) == 1
    failed = cli("caption", tmp_path / "missing.png", "--quiet")
    assert failed.code == 1 and failed.err.strip() == f"error: {tmp_path / 'missing.png'}: file not found"
    # progress bars are drawn only on a terminal, and never under --quiet
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    for quiet_flag, progress in ((False, True), (True, False)):
        app = App(args=argparse.Namespace(quiet=quiet_flag, out=str(tmp_path / "o")), config=tiny_config,
                  registry=registry)
        assert app.loop.ctx.progress is progress
        app.loop.close()


def test_json_shape_single_and_many(cli, example_image):
    single = one(cli("caption", example_image, "--json").out)
    assert set(single) == {"tool", "text", "images", "data", "error"}
    many, summary = parse(cli("caption", example_image, example_image, "--json").out)  # the same shape
    assert [set(r) for r in many] == [set(single)] * 2
    assert summary == {"command": "caption", "results": 2, "ok": 2, "failed": 0, "exit": 0, "error": None}


def test_input_error_is_one_line_exit_1(cli, tmp_path):
    result = cli("caption", tmp_path / "missing.png")
    assert result.code == 1
    assert result.err.strip() == f"error: {tmp_path / 'missing.png'}: file not found"
    assert "Traceback" not in result.err


def test_one_bad_file_among_several(cli, example_image, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    result = cli("caption", example_image, bad, "--json")
    assert result.code == 1
    (good, failed), summary = parse(result.out)
    assert summary["exit"] == 1 and summary["ok"] == summary["failed"] == 1
    assert good["error"] is None and good["text"] == one(cli("caption", example_image, "--json").out)["text"]
    assert failed["error"].startswith(f"{bad}: not a supported image")


def test_python_m_agent_exit_codes(example_image):
    assert run_subprocess("caption", "/nonexistent/x.png").returncode == 1
    assert run_subprocess("caption").returncode == 2


def test_verbose_shows_the_traceback(tmp_path):
    proc = run_subprocess("-v", "caption", tmp_path / "missing.png")
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "file not found" in proc.stderr
    quiet = run_subprocess("caption", tmp_path / "missing.png")
    assert "Traceback" not in quiet.stderr


def test_range_errors_show_whole_numbers_as_typed(cli, example_image):
    result = cli("caption", example_image, "--max-new-tokens", "100000000")
    assert result.code == 1
    assert result.err.strip() == "error: max_new_tokens: must be at most 8192, got 100000000"


def test_malformed_numbers_are_usage_errors_ranges_are_input_errors(cli, example_image):
    bad = cli("caption", example_image, "--max-new-tokens", "abc")
    assert bad.code == 2 and "expected a whole number, got 'abc'" in bad.err
    assert cli("caption", example_image, "--temperature", "warm").code == 2
    assert cli("caption", example_image, "--max-new-tokens", "0").code == 1  # well-formed, out of range


def test_relative_input_paths_are_recorded_absolute(cli, example_image, tmp_path):
    import shutil

    shutil.copy(example_image, tmp_path / "photo.png")  # the test runs in tmp_path
    result = one(cli("caption", "photo.png", "--json").out)
    assert result["data"]["images"] == [str(tmp_path / "photo.png")]


def test_a_failed_item_keeps_what_was_asked(cli, tmp_path):
    result = one(cli("caption", tmp_path / "nope.png", "--detail", "long", "--json").out)
    assert result["error"].endswith("file not found")
    assert result["data"]["args"]["image"] == str(tmp_path / "nope.png")
    assert result["data"]["args"]["detail"] == "long"



def test_empty_global_flags_are_refused_naming_the_flag(cli, example_image, tmp_path):
    for flag in ("--config", "--profile", "--device", "--dtype", "--out"):
        for blank in ("", "  "):
            for args in ([flag, blank, "caption", example_image], ["caption", example_image, f"{flag}={blank}"]):
                result = cli(*args)
                assert result.code == 2, (args, result.code, result.out, result.err)
                assert result.err.strip() == f"error: {flag}: must not be empty", (args, result.err)
                assert result.out == ""
    assert not (tmp_path / "visionloop-out").exists()  # nothing ran, nothing written to the default


def test_empty_tool_arguments_are_refused_like_caption(cli):
    result = cli("caption", "")
    assert result.code == 1 and result.err.strip() == "error: image: expected a file path, got an empty string"
    result = cli("see", "  ", "-q", "what?")
    assert result.code == 1 and "image: expected a file path" in result.err


def test_a_file_name_starting_with_a_dash_gets_a_hint(cli, example_image, tmp_path):
    import shutil

    shutil.copy(example_image, tmp_path / "-dash.png")  # the test runs in tmp_path
    for args, fix in ((["caption", "-dash.png"], "visionloop caption -- -dash.png"),
                      (["caption", "--json", "-dash.png"], "visionloop caption --json -- -dash.png"),
                      (["edit", "-dash.png", "--prompt", "x", "--box", "0,0,8,8"],
                       "visionloop edit --prompt x --box 0,0,8,8 -- -dash.png"),
                      (["edit", "x.png", "--prompt", "x", "--mask", "-dash.png"],
                       "visionloop edit x.png --prompt x --mask=-dash.png"),
                      (["caption", "-nothere.png"], "visionloop caption -- -nothere.png")):
        result = cli(*args)
        assert result.code == 2, (args, result.err)
        first = result.err.splitlines()[0]
        assert first.endswith(f"(a name that starts with '-' reads as an option; write: {fix})"), (args, first)
    fixed = cli("caption", "--json", "--", "-dash.png")  # and the hint works
    assert fixed.code == 0 and one(fixed.out)["data"]["images"] == [str(tmp_path / "-dash.png")]
    assert "write:" not in cli("caption", "--nope").err  # an unknown option that is no file: no hint


def test_the_early_flags_are_parsed_with_the_same_one_line_errors(cli):
    result = cli("--config")
    assert result.code == 2
    assert result.err.splitlines()[0] == "visionloop: error: argument --config: expected one argument"
    assert "usage:" not in result.err


def test_chat_refuses_a_blank_image_argument(cli):
    result = cli("chat", "")
    assert result.code == 2 and result.err.strip() == "error: IMAGE: expected a file path, got an empty string"
