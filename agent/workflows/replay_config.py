"""The configuration a replay runs under: the one its manifest recorded.

A manifest records the profile's name and settings (models, revisions, LoRAs, sizes), the device
and the dtype (`manifest.environment`). `replay_config` rebuilds that configuration over the
current one (paths, cache folder, limits stay the user's), and checks what it cannot honour,
a model that is not available, a device that is not there, before anything runs or any folder
is written. `--profile`, `--device` and `--dtype` on the command line win, each with a warning.
Manifests written before the profile's settings were recorded replay with the current config's
profile of the same name, with the model ids and revisions the manifest recorded.
"""

from __future__ import annotations


from pydantic import ValidationError

from visionloop.config import TINY, Config, Profile
from visionloop.errors import VisionloopError
from visionloop.paths import maybe_user_path

#: environment.models key -> (profile section, kind of model, the file a cached copy holds)
_BACKENDS = {"llava": ("vision", "llava", "config.json"), "diffusion": ("diffusion", "sd", "model_index.json")}
_DTYPES = ("float32", "float16", "bfloat16")


def replay_config(data: dict, where: str, config: Config, flags: dict[str, str | None]) -> tuple[Config, list[str]]:
    """The config to replay manifest `data` (read from `where`) with, and warning lines.
    `flags`: the `profile`, `device` and `dtype` the user gave explicitly (None: not given).
    A `VisionloopError` naming `where` and the reason when the recorded run cannot be honoured."""
    env = data.get("environment") if isinstance(data.get("environment"), dict) else {}
    models = env.get("models") if isinstance(env.get("models"), dict) else {}
    settings = env.get("settings") if isinstance(env.get("settings"), dict) else {}
    recorded = env.get("profile") if isinstance(env.get("profile"), str) else None
    warnings: list[str] = []
    out = config.model_copy(deep=True)
    if flags.get("profile") or recorded is None:
        if recorded is not None and config.profile != recorded:
            warnings.append(f"warning: replaying with profile {config.profile}, not the recorded {recorded}: "
                            "results may differ")
    else:
        out.profiles = {**out.profiles, recorded: _recorded_profile(env, models, recorded, where, config)}
        out.profile = recorded
    device = env.get("device") or settings.get("device")
    dtype = settings.get("dtype") or (env.get("dtype") if env.get("dtype") in _DTYPES else None)
    for key, value in (("device", device), ("dtype", dtype)):
        if not isinstance(value, str) or value == getattr(config, key):
            continue
        if flags.get(key):
            warnings.append(f"warning: replaying with {key} {getattr(config, key)}, not the recorded {value}: "
                            "results may differ")
        else:
            setattr(out, key, value)
    try:
        out = Config.model_validate(out.model_dump())
        out.source = config.source
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise VisionloopError(f"{where}: the recorded settings are not valid here: {loc}: {first['msg']}") from None
    if out.device != config.device:
        _check_device(out.device, where)
    for key in models:
        # a server-backed vision model (Ollama, OpenAI-compatible) is the server's to have, not the cache's
        if key in _BACKENDS and not (key == "llava" and out.active.vision.backend != "transformers"):
            _check_model(out, key, where)
    return out, warnings


def _recorded_profile(env: dict, models: dict, name: str, where: str, config: Config) -> Profile:
    """The recorded profile's settings; for an older manifest, the current profile of the same
    name (or the built-in defaults) with the recorded model ids and revisions."""
    saved = env.get("profile_settings")
    if isinstance(saved, dict):
        try:
            return Profile.model_validate(saved)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            raise VisionloopError(f"{where}: environment.profile_settings.{loc}: {first['msg']}") from None
    known = {k: m for k, m in models.items() if k in _BACKENDS and isinstance(m, dict) and m.get("model")}
    if name not in config.profiles and not known:
        raise VisionloopError(f"{where}: profile {name!r} is not in the current config "
                              f"(profiles: {', '.join(sorted(config.profiles))}) and the manifest does not record "
                              "its models; give --profile NAME to replay with another profile")
    profile = config.profiles[name].model_copy(deep=True) if name in config.profiles else Profile()
    for key, model in known.items():
        section = getattr(profile, _BACKENDS[key][0])
        if section.model != model["model"] or section.revision != model.get("revision"):
            setattr(profile, _BACKENDS[key][0],
                    section.model_copy(update={"model": model["model"], "revision": model.get("revision")}))
    return profile


def _check_device(device: str, where: str) -> None:
    if device == "auto":
        return
    import torch

    from visionloop.models.device import resolve_device

    try:
        resolve_device(device)
    except VisionloopError as exc:
        raise VisionloopError(f"{where}: the run used device {device!r}, which is not available here "
                              f"({str(exc).split(' (')[0]}); give --device to replay on another") from None
    if device.startswith("cuda:") and int(device.split(":")[1]) >= torch.cuda.device_count():
        raise VisionloopError(f"{where}: the run used device {device!r}, but this machine has "
                              f"{torch.cuda.device_count()} CUDA GPU(s); give --device to replay on another")


def _check_model(config: Config, key: str, where: str) -> None:
    """Refuse a recorded model that cannot be loaded here: a missing folder, or a hub model
    that is not in the local cache while the hub is off (offline, or unreachable)."""
    section_name, _, marker = _BACKENDS[key]
    section = getattr(config.active, section_name)
    wanted = [(f"{section_name}.model", section.model, section.revision)]
    if section_name == "diffusion" and section.inpaint_model:
        wanted.append(("diffusion.inpaint_model", section.inpaint_model, None))
    for field, model_id, revision in wanted:
        problem = _unavailable(model_id, revision, marker, config.offline)
        if problem:
            raise VisionloopError(f"{where}: the run used {field} {model_id!r}, which {problem}")
    for i, lora in enumerate(getattr(section, "loras", None) or []):
        path = maybe_user_path(lora.path)
        if lora.path.startswith(("/", ".", "~")) and (path is None or not path.exists()):
            raise VisionloopError(f"{where}: the run used diffusion.loras[{i}] {lora.path!r}, which is not there")


def _unavailable(model_id: str, revision: str | None, marker: str, offline: bool) -> str | None:
    if model_id == TINY:
        return None  # built deterministically on first use
    path = maybe_user_path(model_id)  # a value from a file: ~nosuchuser or a NUL byte is "not there"
    if path is not None and path.exists():
        return None
    if model_id.startswith(("/", ".", "~")) or model_id.count("/") > 1:
        return "is not there (model folder not found)"
    from visionloop.models.loading import hub_reachable, is_offline

    if not is_offline(offline) and hub_reachable():
        return None
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(model_id, marker, revision=revision)
    except (ValueError, OSError):  # an id the hub client refuses (HFValidationError), an unreadable cache
        cached = None
    if isinstance(cached, str):
        return None
    return "is not in the local cache and the hub is off (offline or unreachable)"
