"""The configuration's schema: every section and key, with its type, bounds and default.

`visionloop.config` reads files and the environment into these models; everything that reads
settings imports them from there. Keys are grouped by section; a section owned by one part of
the program (vision, diffusion, ocr, watch, ...) is one class.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import platformdirs
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    field_validator,
    model_validator,
)
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
    # in this process: int8 = the language model's linear layers in int8 (several times faster on a
    # CPU); auto = int8 on a CPU when dtype is auto, none elsewhere; int4 needs a GPU and torchao
    quantize: Literal["auto", "none", "int8", "int4"] = "auto"
    feature_cache: int = Field(8, ge=0, le=1024)  # pictures whose vision-tower output is kept for follow-ups
    # pictures per generate call when captioning many (greedy, in this process); auto: 1 under int8
    # (a batch shares its activation scales), else by device memory
    batch_size: Literal["auto"] | int = "auto"
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

    @field_validator("batch_size", mode="before")
    @classmethod
    def _batch_size(cls, value):
        if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 256):
            return value
        raise ValueError("must be auto or a whole number from 1 to 256")

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


class IpAdapter(Strict):
    """An IP-Adapter: `restyle --style-image` puts the reference in as an image prompt."""
    model: NonBlank  # hub id (h94/IP-Adapter) or folder; `tiny`: the built-in tiny adapter
    subfolder: str = "models"
    weight: NonBlank = "ip-adapter_sd15.safetensors"
    # a folder inside `subfolder` (no '/'), or a hub id / folder of its own (CLIP vision with projection)
    image_encoder: NonBlank = "image_encoder"
    revision: str | None = None


class Segmenter(Strict):
    """The text-prompted segmenter (CLIPSeg) behind `edit --where` and `segment`."""
    model: NonBlank = "CIDAS/clipseg-rd64-refined"
    revision: str | None = None


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
    compile: bool = False  # torch.compile of the UNet, on GPUs (a no-op with a note on the CPU)
    channels_last: bool = False  # channels-last memory layout for the UNet, on GPUs
    vae: str | None = None  # taesd (the tiny autoencoder) or a folder: fast decoding; None: the model's own VAE
    refiner: str | None = None  # SDXL: a refiner model run as draw's second stage (hub id or folder)
    refiner_start: float = Field(0.8, gt=0.0, lt=1.0)  # share of the steps the base runs before the refiner
    text_encoder_3: Literal["auto"] | None = "auto"  # SD3: null drops the T5 encoder (much less memory)
    loras: list[Lora] = []
    ip_adapter: IpAdapter | None = None  # None: `restyle --style-image` uses the text path alone


class Profile(Strict):
    vision: VisionModel = VisionModel()
    diffusion: DiffusionModel = DiffusionModel()
    segmenter: Segmenter = Segmenter()


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


class PlanSettings(Strict):
    confirm: Literal["ask", "never"] = "ask"  # never: a chat plan runs without asking (piped: no --yes needed)
    min_confidence: float = Field(0.5, ge=0.0, le=1.0)  # the model's choice of tool below this share: ask back


def ray_address_problem(value: str) -> str | None:
    """Why `value` is no Ray address visionloop takes (None when it is one): "auto", Ray
    Client's "ray://HOST:PORT", or a cluster node's "HOST:PORT" (its GCS port)."""
    if not value.strip():
        return "is empty (leave it out to start a local Ray)"
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", value)
    if scheme and scheme[1].lower() != "ray":
        return f"{scheme[0]} is not a Ray address: use auto, ray://HOST:10001 (Ray Client) or HOST:PORT"
    host = r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)"
    if value == "auto" or re.fullmatch(rf"ray://{host}(:\d{{1,5}})?|{host}:\d{{1,5}}", value):  # Ray Client: 10001
        return None
    return "must be auto, ray://HOST:10001 (Ray Client) or HOST:PORT (from a node of the cluster)"


class RaySettings(Strict):
    """Where and how `visionloop run --engine ray` runs a batch (each has a command-line flag)."""

    address: str | None = None  # None: start a local Ray; "auto" or "ray://HOST:10001": join a cluster
    workers: Annotated[StrictInt, Field(ge=1)] | None = None  # actors, each with its own models; None: as many as fit
    gpus_per_worker: float = Field(0.0, ge=0.0)  # 1: one GPU per actor
    cpus_per_worker: float = Field(1.0, gt=0.0)
    batch_size: Annotated[StrictInt, Field(ge=1)] = 1  # items handed to an actor at a time

    @field_validator("address")
    @classmethod
    def _address(cls, value):
        problem = None if value is None else ray_address_problem(value)
        if problem:
            raise ValueError(problem)
        return value


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
        "diffusion": {"model": TINY, "steps": 4, "width": 64, "height": 64, "ip_adapter": {"model": TINY}},
        "segmenter": {"model": TINY},
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
    plan: PlanSettings = PlanSettings()  # the chat's plans of several steps
    history: bool = True  # record every tool call in the history (`visionloop logs`, the server's gallery)
    engine: Literal["local", "ray"] = "local"  # where `visionloop run` runs a batch (folder or glob input)
    ray: RaySettings = RaySettings()

    # filled in by load_config, not read from the file
    source: str | None = Field(None, exclude=True)

    @property
    def active(self) -> Profile:
        """The selected profile (validated to exist by `load_config`)."""
        return self.profiles[self.profile]

    @property
    def cache_path(self) -> Path:
        return user_path(self.cache_dir) if self.cache_dir else Path(platformdirs.user_cache_dir(APP))
