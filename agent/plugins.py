"""The plugin manager: entry points, `plugins.paths` folders, per-plugin error reporting.

Loading is cheap: plugin modules must not import torch, transformers or diffusers at import
time (the backends do that when a model is first needed), so `visionloop --help` stays fast.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path

import pluggy

from visionloop import hookspecs
from visionloop.errors import ConfigError, PluginError
from visionloop.tools import Tool
from visionloop.paths import user_path

log = logging.getLogger(__name__)

GROUP = "visionloop"


@dataclass
class Registry:
    """The loaded plugins and the tools they registered."""

    pm: pluggy.PluginManager
    tools: dict[str, Tool] = field(default_factory=dict)
    broken: dict[str, str] = field(default_factory=dict)  # plugin name -> its import error

    def tool(self, name: str) -> Tool:
        try:
            return self.tools[name]
        except KeyError:
            raise PluginError(f"unknown tool {name!r} (tools: {', '.join(sorted(self.tools))})") from None


def _one_line(exc: Exception) -> str:
    """`Type: message` on one line (pluggy's validation errors span several)."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def _load_entry_points(pm: pluggy.PluginManager, broken: dict[str, str]) -> None:
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        if pm.get_plugin(ep.name) is not None:
            continue
        try:
            pm.register(ep.load(), name=ep.name)
        except Exception as exc:  # a broken plugin must not take the others down
            broken[ep.name] = _one_line(exc)
            log.debug("plugin %s failed to load", ep.name, exc_info=True)


def _load_folder(pm: pluggy.PluginManager, folder: Path, broken: dict[str, str]) -> None:
    if not folder.is_dir():
        broken[str(folder)] = "plugins.paths: not a folder"
        return
    for path in sorted(folder.glob("*.py")):
        if path.name.startswith("_"):
            continue
        name = f"{path.stem} ({path})"
        try:
            spec = importlib.util.spec_from_file_location(f"visionloop_plugin_{path.stem}", path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
            pm.register(module, name=name)
        except Exception as exc:
            broken[name] = _one_line(exc)
            log.debug("plugin %s failed to load", name, exc_info=True)


def load_registry(paths: list[str | Path] = (), extra: list[object] = ()) -> Registry:
    """Load every plugin and collect its tools.

    `extra` registers plugin objects directly (tests use it). Raises `PluginError` when two
    plugins register a tool with the same name.
    """
    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(hookspecs)
    broken: dict[str, str] = {}
    for i, plugin in enumerate(extra):
        pm.register(plugin, name=getattr(plugin, "__name__", f"extra-{i}"))
    _load_entry_points(pm, broken)
    for folder in paths:
        _load_folder(pm, user_path(folder), broken)

    registry = Registry(pm=pm, broken=broken)
    # Call each implementation ourselves (rather than pm.hook.register_tools) so that every
    # tool is attributed to its plugin and one failing plugin is reported by name.
    for impl in pm.hook.register_tools.get_hookimpls():
        plugin_name = impl.plugin_name

        def register(tool: Tool, _plugin=plugin_name) -> None:
            if not isinstance(tool, Tool):
                raise PluginError(f"plugin {_plugin!r} registered {tool!r}, which is not an visionloop.tools.Tool")
            other = registry.tools.get(tool.name)
            if other is not None:
                raise PluginError(f"two plugins register the tool {tool.name!r}: {other.plugin!r} and {_plugin!r}")
            tool.plugin = _plugin
            registry.tools[tool.name] = tool

        try:
            impl.function(register=register)
        except PluginError:
            raise
        except Exception as exc:
            broken[plugin_name] = f"register_tools failed: {_one_line(exc)}"
    return registry


def run_startup(registry: Registry, config) -> None:
    """Call every plugin's `startup(config)`.

    A `ConfigError` stops the program with its message (the plugin said its settings are
    wrong). Any other exception marks that plugin broken: its tools are withdrawn, it is
    reported by name, and the other plugins keep working.
    """
    for impl in registry.pm.hook.startup.get_hookimpls():
        try:
            impl.function(config=config)
        except ConfigError:
            raise
        except Exception as exc:
            name = impl.plugin_name
            registry.broken[name] = f"startup failed: {_one_line(exc)}"
            log.debug("plugin %s failed in startup", name, exc_info=True)
            for tool_name in [t.name for t in registry.tools.values() if t.plugin == name]:
                del registry.tools[tool_name]
            registry.pm.unregister(name=name)
