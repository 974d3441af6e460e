"""The one-shot CLI given bad or odd input by a new user: every mistake is one line on stderr
naming the file or argument and the reason, no traceback, the right exit code, and under
--json stdout is JSON Lines (result lines, then the summary) or nothing."""

import json

import pytest
from json_lines import one, summary
from PIL import Image, PngImagePlugin


def test_info_on_a_truncated_png_is_one_line_not_a_traceback(cli, example_image, tmp_path):
    data = example_image.read_bytes()
    (tmp_path / "half.png").write_bytes(data[: len(data) // 2])
    result = cli("info", "half.png")
    assert result.code == 1 and result.out == ""
    assert result.err == "error: half.png: truncated image (the file is incomplete)\n"


def test_info_json_for_one_bad_file_is_still_a_json_record(cli):
    result = cli("info", "nosuch.png", "--json")
    assert result.code == 1
    assert one(result.out) == {"file": "nosuch.png", "format": None, "width": None, "height": None,
                               "parameters": None, "visionloop": None, "error": "nosuch.png: file not found"}
    assert summary(result.out)["exit"] == 1
    assert result.err == "error: nosuch.png: file not found\n"


def test_control_characters_in_names_never_reach_the_terminal(cli):
    result = cli("info", "no\nsuch.png")
    assert result.code == 1 and result.err == "error: no\\nsuch.png: file not found\n"
    result = cli("info", "\x1b[31mred.png", "also-missing.png")  # several: each on its own line
    assert result.code == 1
    assert result.err.splitlines() == ["error: \\x1b[31mred.png: file not found",
                                       "error: also-missing.png: file not found"]
    result = cli("caption", "\x1b]0;title\x07.png")  # a tool's error
    assert result.code == 1 and result.err.endswith("\\x1b]0;title\\x07.png: file not found\n")
    assert "\x1b" not in result.err
    result = cli("draw", "cat", "\x1b[2J")  # argparse's own message quotes the word raw
    assert result.code == 2 and "\x1b" not in result.err and "\\x1b[2J" in result.err


def test_info_escapes_the_text_a_foreign_png_carries(cli, tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a cat\x1b]0;pwned\x07\nSteps: 4\x1b[2J")
    info.add_text("visionloop", json.dumps({"tool": "dr\x1b[31maw"}))
    Image.new("RGB", (8, 8)).save(tmp_path / "evil\tname.png", pnginfo=info)
    result = cli("info", "evil\tname.png")
    assert result.code == 0 and "\x1b" not in result.out and "\x07" not in result.out
    assert result.out.splitlines() == ["evil\\tname.png: PNG 8x8", "a cat\\x1b]0;pwned\\x07", "Steps: 4\\x1b[2J",
                                       "visionloop: tool dr\\x1b[31maw"]
    assert one(cli("info", "evil\tname.png", "--json").out)["parameters"].startswith("a cat\x1b")  # raw


@pytest.mark.parametrize("kind", ["file", "dangling link", "file in the path"])
def test_out_that_cannot_be_a_folder_says_why(cli, example_image, tmp_path, kind):
    (tmp_path / "taken.png").write_bytes(b"x")
    (tmp_path / "broken").symlink_to(tmp_path / "nowhere")
    out, reason = {"file": ("taken.png", "taken.png: output path exists and is not a folder"),
                   "dangling link": ("broken", "broken: output path exists and is a broken symbolic link"),
                   "file in the path": ("taken.png/sub", "taken.png/sub: cannot create output folder: "
                                                         "a part of the path is a file, not a folder")}[kind]
    result = cli("--out", out, "draw", "cat")  # checked before any model loads
    assert result.code == 1 and result.err == f"error: {reason}\n"
    assert (tmp_path / "taken.png").read_bytes() == b"x" and not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize("var", ["VISIONLOOP_CONFIG", "VISIONLOOP_PROFILE", "VISIONLOOP_DEVICE", "VISIONLOOP_DTYPE"])
def test_an_environment_variable_set_to_blanks_is_named(cli, monkeypatch, var):
    monkeypatch.setenv(var, " \t")
    result = cli("tools")
    assert result.code == 1 and result.out == ""
    assert result.err == f"error: ${var}: is set to blanks (' \\t'); unset it or give a value\n"
    monkeypatch.setenv(var, "")  # set but empty: unset, as shells mean it
    if var != "VISIONLOOP_CONFIG":
        assert cli("tools").code == 0


def test_an_unusable_tiny_cache_folder_is_a_model_error_naming_it(tmp_path):
    from visionloop.errors import ModelError
    from visionloop.models.tiny import tiny_model_path

    (tmp_path / "file").write_text("x")
    with pytest.raises(ModelError, match=r"^.*/file/tiny: cannot build the tiny sd model there: Not a directory "
                                         r"\(cache_dir in the config sets this folder\)$"):
        tiny_model_path("sd", tmp_path / "file")


@pytest.mark.parametrize("flag, value", [("--guidance", "-inf"), ("--size", "-64x64"), ("--seed", "-1e3")])
def test_a_value_that_starts_with_a_dash_gets_the_spelling_that_works(cli, flag, value):
    result = cli("draw", "cat", flag, value)
    assert result.code == 2
    assert result.err.splitlines()[0] == (f"visionloop draw: error: argument {flag}: expected one argument (a value "
                                          f"that starts with '-' reads as an option; write: visionloop draw cat "
                                          f"{flag}={value})")
    assert "write:" not in cli("edit", "x.png", "--mask", "--box", "0,0,8,8").err  # a missing value: no hint


def test_no_command_prints_the_help_on_stderr(cli):
    for args in ([], ["--json"]):
        result = cli(*args)
        assert result.code == 2 and result.out == "" and "usage: visionloop" in result.err


def test_an_error_listing_several_problems_keeps_one_line_each(cli, tmp_path):
    (tmp_path / "w\x1b.yaml").write_text("name: w\nsteps:\n  - id: a\n    tool: caption\n    promt: x\n    wiht: {}\n")
    result = cli("run", "w\x1b.yaml")
    assert result.code == 1 and "\x1b" not in result.err
    assert result.err.splitlines() == ["error: w\\x1b.yaml:3: steps[0].with: caption needs argument 'image'",
                                       "w\\x1b.yaml:5: steps[0]: unknown field 'promt'",
                                       "w\\x1b.yaml:6: steps[0]: unknown field 'wiht' (did you mean 'with'?)"]
