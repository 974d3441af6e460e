"""Plugin loading: entry points, plugins.paths folders, broken plugins, name clashes, and a
third-party tool getting its CLI command with no CLI code."""

import textwrap

import pytest

from visionloop.errors import PluginError
from visionloop.plugins import load_registry
from json_lines import one, results

PLUGIN = textwrap.dedent('''
    from visionloop import hookspecs
    from visionloop.tools import Input, Tool, ToolResult

    def shout(ctx, text, times=1):
        return ToolResult(tool="shout", text=(text.upper() + "!") * times, data={"times": times})

    @hookspecs.hookimpl
    def register_tools(register):
        register(Tool("shout", "Say it louder.", [Input("text", "text", required=True, positional=True),
                                                  Input("times", "int", 1, "how often", min=1, max=5)], shout))
''')


def plugin_folder(tmp_path, files: dict) -> str:
    folder = tmp_path / "myplugins"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    return str(folder)


def test_builtin_tools_come_from_entry_points(registry):
    assert {"see", "caption", "read-text"} <= set(registry.tools)
    assert registry.tools["caption"].plugin == "caption"


def test_folder_plugin_gets_a_cli_command(tmp_path, cli):
    folder = plugin_folder(tmp_path, {"shout.py": PLUGIN})
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"plugins:\n  paths: [{folder}]\n")
    listed = results(cli("--config", cfg, "tools", "--json").out)
    shout = next(t for t in listed if t["name"] == "shout")
    assert shout["description"] == "Say it louder."
    assert [i["name"] for i in shout["inputs"]] == ["text", "times"]
    result = cli("--config", cfg, "shout", "hey", "--times", "2", "--json")
    assert result.code == 0, result.err
    assert one(result.out) == {"tool": "shout", "text": "HEY!HEY!", "images": [],
                               "data": {"times": 2, "seconds": one(result.out)["data"]["seconds"]}, "error": None}
    bad = cli("--config", cfg, "shout", "hey", "--times", "9")
    assert bad.code == 1 and bad.err.strip() == "error: times: must be at most 5, got 9"


def test_broken_plugin_is_reported_and_others_work(tmp_path, cli):
    folder = plugin_folder(tmp_path, {"shout.py": PLUGIN, "broken.py": "import no_such_module_xyz\n"})
    registry = load_registry([folder])
    assert "shout" in registry.tools and "caption" in registry.tools
    (name, error), = [(n, e) for n, e in registry.broken.items() if "broken" in n]
    assert "No module named 'no_such_module_xyz'" in error
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"plugins:\n  paths: [{folder}]\n")
    result = cli("--config", cfg, "tools")
    assert result.code == 0 and "shout" in result.out
    assert "broken" in result.out and "no_such_module_xyz" in result.out


def test_two_tools_with_one_name_is_an_error(tmp_path):
    clash = PLUGIN.replace('"shout", "Say it louder."', '"caption", "Another caption."')
    folder = plugin_folder(tmp_path, {"clash.py": clash})
    with pytest.raises(PluginError, match=r"two plugins register the tool 'caption': 'caption' and 'clash"):
        load_registry([folder])


def test_hookimpl_with_unknown_argument_is_reported_by_name(tmp_path):
    bad = "from visionloop import hookspecs\n@hookspecs.hookimpl\ndef register_tools(register, colour):\n    pass\n"
    registry = load_registry([plugin_folder(tmp_path, {"badargs.py": bad})])
    (error,) = [e for n, e in registry.broken.items() if "badargs" in n]
    assert "colour" in error and "\n" not in error


def test_missing_plugin_folder_is_reported(tmp_path):
    registry = load_registry([tmp_path / "nowhere"])
    assert any("not a folder" in e for e in registry.broken.values())


def test_startup_hook_config_error_stops_with_its_message(tmp_path, cli):
    strict = ("from visionloop import hookspecs\nfrom visionloop.errors import ConfigError\n"
              "@hookspecs.hookimpl\ndef startup(config):\n"
              "    if 'strict' not in config.plugins.settings:\n"
              "        raise ConfigError('plugins.settings.strict: missing (the strict plugin needs a token)')\n")
    folder = plugin_folder(tmp_path, {"strict.py": strict})
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"plugins:\n  paths: [{folder}]\n")
    result = cli("--config", cfg, "tools")
    assert result.code == 1
    assert result.err.strip().splitlines()[-1] == \
        "error: plugins.settings.strict: missing (the strict plugin needs a token)"
    cfg.write_text(f"plugins:\n  paths: [{folder}]\n  settings:\n    strict: {{token: x}}\n")
    assert cli("--config", cfg, "tools").code == 0


def test_startup_hook_that_crashes_marks_only_that_plugin_broken(tmp_path, cli):
    crashing = PLUGIN + "\n@hookspecs.hookimpl\ndef startup(config):\n    raise RuntimeError('bad startup')\n"
    folder = plugin_folder(tmp_path, {"shout.py": crashing})
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"plugins:\n  paths: [{folder}]\n")
    result = cli("--config", cfg, "tools")
    assert result.code == 0 and "Traceback" not in result.err
    assert "startup failed: RuntimeError: bad startup" in result.out
    assert "caption" in result.out and "shout  Say" not in result.out
    assert cli("--config", cfg, "shout", "hey").code == 2  # its tool is withdrawn


def test_broken_plugin_warning_is_silenced_by_quiet(tmp_path):
    from conftest import run_subprocess

    folder = plugin_folder(tmp_path, {"broken.py": "import no_such_module_xyz\n"})
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"plugins:\n  paths: [{folder}]\n")
    loud = run_subprocess("--config", cfg, "tools")
    assert loud.returncode == 0 and "plugin broken" in loud.stderr and "no_such_module_xyz" in loud.stderr
    quiet = run_subprocess("--config", cfg, "tools", "-q")
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_empty_values_are_refused_for_any_tools_inputs(tmp_path, cli):
    """A third-party tool's text input: empty or blank is refused from the CLI and from raw
    values (workflows, the chat) alike, naming the input."""
    from visionloop.errors import InputError
    from visionloop.tools import Input, Tool, ToolResult
    from visionloop.values import check_args

    folder = plugin_folder(tmp_path, {"shout.py": PLUGIN})
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"plugins:\n  paths: [{folder}]\n")
    for blank in ("", "   ", "\t\n"):
        result = cli("--config", cfg, "shout", blank)
        assert result.code == 1 and result.err.strip() == "error: text: must not be empty", result.err
    tool = Tool("t", "", [Input("text", "text"), Input("pick", "choice", choices=("a", "b")),
                          Input("n", "int"), Input("img", "image", multiple=True)], lambda ctx, **kw: ToolResult("t"))
    with pytest.raises(InputError) as err:
        check_args(tool, {"text": " ", "pick": "", "n": "", "img": ["a.png", ""]})
    assert str(err.value) == ("text: must not be empty; pick: must not be empty; n: must not be empty; "
                              "img: expected a file path, got an empty string")
    assert check_args(tool, {"text": " x "})["text"] == " x "  # not blank: kept as given


def test_run_tool_turns_an_image_path_with_no_home_into_an_error_result(registry):
    """`run_tool` promises that only `Cancelled` propagates: a path the user typed that names no
    home folder is the call's error, not an exception for the chat or the watcher to catch."""
    from visionloop.tools import run_tool

    results = run_tool(registry.tool("caption"), {"image": "~nosuchuserzz/x.png"}, None)
    assert len(results) == 1 and "'~nosuchuserzz' names no home folder" in results[0].error
