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
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import platformdirs
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, ValidationError, model_validator

from visionloop.errors import ConfigError, UsageError
from visionloop.yamlsource import YamlProblem, did_you_mean, format_loc, load_yaml
from visionloop.paths import user_path

APP = "visionloop"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _non_blank(value: str) -> str:
    if not value.strip():  # `output: ""` would quietly mean the current folder, `model: ""` no model
        raise ValueError("must not be empty")
    return value


#: a string that must say something: names, paths, model ids
NonBlank = Annotated[str, AfterValidator(_non_blank)]


#: keys that only one kind of vision backend reads: given to another, they are a mistake
_REMOTE_ONLY = {"host": ("ollama",), "keep_alive": ("ollama",), "base_url": ("openai",),
                "api_key_env": ("ollama", "openai"), "revision": ("transformers",)}


class VisionModel(Strict):
    # transformers: weights loaded in this process; ollama: an Ollama server (/api/chat);
    # openai: an OpenAI-compatible server (vLLM, llama.cpp, LM Studio, LocalAI: /v1/chat/completions)
    backend: Literal["transformers", "ollama", "openai"] = "transformers"
    model: NonBlank = "llava-hf/llava-1.5-7b-hf"
    revision: str | None = None
    max_new_tokens: int = Field(256, ge=1, le=8192)
    temperature: float = Field(0.0, ge=0.0, le=5.0)  # 0 = greedy decoding
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    # the server backends (ollama, openai)
    host: str | None = None  # ollama: default $OLLAMA_HOST, else http://127.0.0.1:11434
    base_url: str | None = None  # openai: e.g. http://127.0.0.1:8000/v1
    api_key_env: str | None = None  # the NAME of the environment variable holding the API key
    keep_alive: str | int | None = None  # ollama: how long the server keeps the model loaded ("5m", "-1"); None: its default
    context_length: int | None = Field(None, ge=256)  # tokens; None: what the server reports, at most 4096
    max_side: int = Field(1344, ge=32, le=16384)  # larger images are scaled down before they are sent
    image_format: Literal["png", "jpeg"] = "png"  # how images travel (base64): png is lossless
    connect_timeout: float = Field(5.0, gt=0)  # seconds to connect to the server
    first_token_timeout: float = Field(300.0, gt=0)  # seconds until the first token (includes loading the model)
    read_timeout: float = Field(120.0, gt=0)  # seconds of silence allowed between two pieces of an answer
    retries: int = Field(3, ge=0, le=10)  # extra attempts after HTTP 429/5xx, with growing pauses
    retry_backoff: float = Field(1.0, ge=0, le=60)  # first pause in seconds; doubles each time (or Retry-After)

    @model_validator(mode="after")
    def _backend_keys(self):
        for key, backends in _REMOTE_ONLY.items():
            if key in self.model_fields_set and getattr(self, key) is not None and self.backend not in backends:
                raise ValueError(f"{key} is for backend {' or '.join(backends)}, not {self.backend}")
        if self.api_key_env is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.api_key_env):
            # checked here, on the whole section, so that the message never repeats the value (a pasted key)
            raise ValueError("api_key_env must name an environment variable (e.g. OPENAI_API_KEY), "
                             "never hold the key itself")
        if self.backend == "openai" and not self.base_url:
            raise ValueError("backend openai needs base_url (e.g. http://127.0.0.1:8000/v1)")
        return self


class Lora(Strict):
    path: NonBlank
    scale: float = 1.0
    name: str | None = None


class DiffusionModel(Strict):
    model: NonBlank = "stable-diffusion-v1-5/stable-diffusion-v1-5"
    revision: str | None = None
    inpaint_model: str | None = None
    steps: int = Field(25, ge=1, le=500)
    guidance: float = Field(7.5, ge=0.0, le=50.0)
    width: int | None = Field(None, ge=8)
    height: int | None = Field(None, ge=8)
    scheduler: str | None = None  # None keeps the model's own scheduler
    max_width: int = Field(2048, ge=8)
    max_height: int = Field(2048, ge=8)
    safety_checker: Literal["auto", "on", "off"] = "auto"
    attention_slicing: bool = False
    vae_tiling: bool = False
    offload: Literal["none", "model", "sequential"] = "none"
    compile: bool = False
    loras: list[Lora] = []


class Profile(Strict):
    vision: VisionModel = VisionModel()
    diffusion: DiffusionModel = DiffusionModel()


class ImageLimits(Strict):
    max_pixels: int = Field(50_000_000, ge=1)
    max_file_mb: float = Field(200.0, gt=0)


class OcrSettings(Strict):
    engine: Literal["auto", "rapidocr", "tesseract", "llava"] = "auto"
    lang: str = "en"


class PluginSettings(Strict):
    paths: list[str] = []
    # Settings for third-party plugins, by plugin name; each plugin checks its own in `startup`.
    settings: dict[str, dict[str, Any]] = {}


class WatchRule(Strict):
    name: str
    folder: str
    patterns: list[str] = Field(["*.jpg", "*.jpeg", "*.png", "*.webp"], min_length=1)  # [] would take nothing
    workflow: str
    input: str = "image"
    output: str
    settle: float = Field(2.0, ge=0.0)
    recursive: bool = False
    failed: str | None = None
    on_success: Literal["keep", "move"] = "keep"
    rescan: float = Field(60.0, gt=0)  # seconds between full rescans (events can be lost)
    ceiling: float | None = Field(None, gt=0)  # longest wait for a file to settle; None: max(300, 20 x settle)
    retries: int = Field(3, ge=0)  # extra attempts after a transient error (file busy, disk full)


TINY = "tiny"  # a model name that means "the built-in tiny random model"

DEFAULT_PROFILES = {
    "default": {},
    TINY: {
        "vision": {"model": TINY, "max_new_tokens": 24},
        "diffusion": {"model": TINY, "steps": 4, "width": 64, "height": 64},
    },
}


class Config(Strict):
    profile: str = "default"
    profiles: dict[str, Profile] = {}
    device: str = Field("auto", pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    # intra-op CPU threads for every job, fixed per process so repeated runs agree; None: physical cores
    threads: Annotated[StrictInt, Field(ge=1)] | None = None
    output: NonBlank = "visionloop-out"
    workflows: NonBlank = "workflows"
    cache_dir: str | None = None  # where the tiny models are built; default: user cache folder
    offline: bool = False  # never reach the hub (same as HF_HUB_OFFLINE=1)
    allow_pickle: bool = False
    trust_remote_code: bool = False
    images: ImageLimits = ImageLimits()
    ocr: OcrSettings = OcrSettings()
    plugins: PluginSettings = PluginSettings()
    watch: list[WatchRule] = []
    history: bool = True  # record every tool call in the history (`visionloop logs`, the server's gallery)

    # filled in by load_config, not read from the file
    source: str | None = Field(None, exclude=True)

    @property
    def active(self) -> Profile:
        """The selected profile (validated to exist by `load_config`)."""
        return self.profiles[self.profile]

    @property
    def cache_path(self) -> Path:
        return user_path(self.cache_dir) if self.cache_dir else Path(platformdirs.user_cache_dir(APP))


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
