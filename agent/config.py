"""Load and validate the configuration.

Lookup order: `--config FILE`, `$VISIONLOOP_CONFIG`, `./config.yaml`, the user config folder
(platformdirs), then the built-in defaults. A file is merged over the defaults, so a file that
holds one section is valid. Unknown or mistyped keys are errors naming the file, the line and
the key. `$VISIONLOOP_PROFILE`, `$VISIONLOOP_DEVICE` and `$VISIONLOOP_DTYPE` override the file,
and `--profile`, `--device` and `--dtype` override both.
"""

from __future__ import annotations

import copy
import difflib
import os
from pathlib import Path
from typing import Any

import platformdirs
from pydantic import (
    BaseModel,
    ValidationError,
)
from visionloop.config_schema import (  # noqa: F401  (re-exported: the settings' home for readers)
    APP,
    DEFAULT_PROFILES,
    TINY,
    Config,
    DiffusionModel,
    ImageLimits,
    Lora,
    NonBlank,
    OcrSettings,
    PluginSettings,
    Profile,
    Strict,
    VisionModel,
    WatchRule,
)
from visionloop.errors import ConfigError, UsageError
from visionloop.paths import user_path
from visionloop.yamlsource import YamlProblem, did_you_mean, format_loc, load_yaml


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _resolve_relative_to(config: Config, base: Path) -> None:
    """Folders named in a config file are relative to that file, not to wherever the command
    happens to run (`--config ~/vl/config.yaml` finds `~/vl/workflows`). Output folders stay
    relative to the working directory, like `--out`."""

    def fix(value: str) -> str:
        path = Path(value)
        return value if path.is_absolute() or value.startswith("~") else str(base / path)

    config.workflows = fix(config.workflows)
    config.plugins.paths = [fix(p) for p in config.plugins.paths]
    if config.cache_dir:
        config.cache_dir = fix(config.cache_dir)


def find_config(explicit: str | None = None) -> Path | None:
    """The config file to read, by the documented lookup order, or None for built-in defaults."""
    return _locate(explicit)[0]


def _locate(explicit: str | None) -> tuple[Path | None, str]:
    """The config file and what named it (`$VISIONLOOP_CONFIG`, for messages; "" otherwise)."""
    if explicit:
        return user_path(explicit, "--config"), ""
    env = _env("VISIONLOOP_CONFIG")
    if env:
        return user_path(env, "$VISIONLOOP_CONFIG"), "$VISIONLOOP_CONFIG"
    for candidate in (Path("config.yaml"), Path(platformdirs.user_config_dir(APP)) / "config.yaml"):
        if candidate.is_file():
            return candidate, ""
    return None, ""


def _env(name: str) -> str | None:
    """An environment variable that is set and says something; set to "" means unset, but set
    to blanks is a mistake (`VISIONLOOP_CONFIG=" "` would name a file called " ")."""
    value = os.environ.get(name)
    if value and not value.strip():
        raise ConfigError(f"${name}: is set to blanks ({value!r}); unset it or give a value")
    return value or None


def _model_at(loc: tuple) -> type[BaseModel] | None:
    """The pydantic model that holds the field at `loc`, for 'did you mean' hints."""
    model: Any = Config
    for part in loc[:-1]:
        if isinstance(part, int) or model is None:
            model = WatchRule if model is Config and loc[0] == "watch" else model
            continue
        if model is Config and part == "profiles":
            model = "profiles"
            continue
        if model == "profiles":
            model = Profile
            continue
        field = model.model_fields.get(part) if isinstance(model, type) else None
        ann = field.annotation if field else None
        model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return model if isinstance(model, type) else None


#: what `device` and `dtype` accept, in words (pydantic's would show the regex or every quote)
ACCEPTED = {"device": "must be auto, cpu, mps, cuda or cuda:N", "dtype": "must be auto, float32, float16 or bfloat16"}


def _unknown_profile(name: str, profiles) -> str:
    names = sorted(map(str, profiles))  # a YAML key may be a number
    match = difflib.get_close_matches(name, names, n=1)
    hint = f"did you mean {match[0]!r}? " if match else ""
    return f"({hint}profiles: {', '.join(names)})"


def _check_flags(device: str | None, dtype: str | None) -> None:
    """A bad `--device` or `--dtype` is a usage error (exit 2), checked before any file is read."""
    for key, value in (("device", device), ("dtype", dtype)):
        if value:
            try:
                Config.model_validate({key: value})
            except ValidationError:
                raise UsageError(f"--{key} {value!r}: {ACCEPTED[key]}") from None


def _problem(error: dict, where: str) -> str:
    """One pydantic error as `WHERE: path: message`, in words a user can act on."""
    loc = tuple(error["loc"])
    if error["type"] == "extra_forbidden":
        model = _model_at(loc)
        message = f"unknown key {loc[-1]!r}{did_you_mean(loc[-1], list(model.model_fields) if model else [])}"
    else:
        message = ACCEPTED.get(loc[0], "") if loc in (("device",), ("dtype",)) else ""
        message = message or error["msg"].removeprefix("Value error, ")
        if "input" in error and not isinstance(error["input"], (dict, list)):
            message += f" (got {error['input']!r})"
    return f"{where}: {format_loc(loc)}: {message}"


def load_config(path: str | None = None, profile: str | None = None, device: str | None = None,
                dtype: str | None = None) -> Config:
    """Find, read, merge and validate the configuration. A bad `profile`, `device` or `dtype`
    (the command-line flags) raises UsageError; anything else wrong raises one ConfigError that
    lists every problem, each with its source (`FILE:LINE`, `$VISIONLOOP_...`)."""
    _check_flags(device, dtype)
    file, named_by = _locate(path)
    raw: dict = {}
    doc = None
    if file is not None:
        by = f" (named by {named_by})" if named_by else ""
        try:
            doc = load_yaml(file)
        except FileNotFoundError:
            raise ConfigError(f"{file}: config file not found{by}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{file}: not a UTF-8 text file (byte {exc.start}){by}") from None
        except OSError as exc:
            raise ConfigError(f"{file}: cannot read config: {exc.strerror or exc}{by}") from None
        except YamlProblem as exc:
            where = f"{file}:{exc.line}" if exc.line else str(file)  # 0: the file as a whole
            raise ConfigError(f"{where}: {exc.message}{by if not exc.line else ''}") from None
        if doc.data is not None and not isinstance(doc.data, dict):
            raise ConfigError(f"{file}:1: the config must be a mapping of sections, got {type(doc.data).__name__}")
        raw = doc.data or {}
    merged = _merge({"profiles": DEFAULT_PROFILES}, raw)
    overridden: dict[str, str] = {}  # key -> where its value came from, for error messages
    for key, value, source in (*((k, _env(f"VISIONLOOP_{k.upper()}"), f"$VISIONLOOP_{k.upper()}")
                                   for k in ("profile", "device", "dtype")),
                               ("device", device, "--device"), ("dtype", dtype, "--dtype")):
        if value:  # command-line flags win over the environment and the file
            merged[key], overridden[key] = value, source
    profiles = merged.get("profiles")
    if profile:
        if isinstance(profiles, dict) and profile not in profiles:
            raise UsageError(f"--profile {profile!r}: no such profile {_unknown_profile(profile, profiles)}")
        merged["profile"] = profile
        overridden["profile"] = "--profile"
    problems: list[tuple[int, str]] = []  # (line, message): those without a line (env, defaults) first
    try:
        config = Config.model_validate(merged)
    except ValidationError as exc:
        config = None
        for error in exc.errors():
            loc = tuple(error["loc"])
            line = doc.line(loc) if doc and loc[:1] and loc[0] not in overridden else 0
            where = overridden.get(loc[0]) if loc else None
            where = where or (f"{file}:{line}" if file else "built-in defaults")
            problems.append((line, _problem(error, where)))
    name = merged.get("profile", "default")
    if isinstance(profiles, dict) and isinstance(name, str) and name not in profiles:
        line = doc.line(("profile",)) if doc and "profile" not in overridden else 0
        where = overridden.get("profile") or (f"{file}:{line}: profile" if doc else "profile")
        problems.append((line, f"{where}: unknown profile {name!r} {_unknown_profile(name, profiles)}"))
    if problems:  # every one, one a line (the CLI prints `problems` each on its own line)
        lines = [text for _, text in sorted(problems, key=lambda p: p[0])]
        error = ConfigError("\n".join(lines))
        error.problems = lines
        raise error
    if file is not None:
        _resolve_relative_to(config, file.parent)
    config.source = str(file) if file else None
    return config
