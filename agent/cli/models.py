"""`visionloop models` (what the profile's backends can serve, marking what the profile uses) and
`visionloop pull` (fetch the profile's models: the Hugging Face files the loaders need, or
`ollama pull` through Ollama's /api/pull, with a progress bar on a terminal)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from visionloop.cli.jsonlines import json_command

#: the files the loaders read (safetensors weights, configs, tokenizer, chat template), by kind
HUB_FILES = {"llava": ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"],
             "sd": ["model_index.json", "*/*.json", "*/*.txt", "*/*.safetensors", "*/*.model"]}
#: variants diffusers does not load by default (the full-precision files are the ones it reads)
HUB_SKIP = {"llava": [], "sd": ["*.fp16.*", "*.non_ema.*", "*.ema_only.*"]}


def add_commands(sub, common) -> None:
    p = sub.add_parser("models", parents=[common()],
                       help="list the models the profile's backends can serve (* marks the profile's own)")
    p.set_defaults(handler=cmd_models)
    p = sub.add_parser("pull", parents=[common()],
                       help="fetch the profile's models (Hugging Face files, or `ollama pull`) with progress")
    p.set_defaults(handler=cmd_pull)


def used_models(config) -> list[tuple[str, str, str]]:
    """(config key, model, kind) for every model the active profile names."""
    vision, diffusion = config.active.vision, config.active.diffusion
    out = [("vision.model", vision.model, vision.backend if vision.backend != "transformers" else "llava"),
           ("diffusion.model", diffusion.model, "sd")]
    if diffusion.inpaint_model:
        out.append(("diffusion.inpaint_model", diffusion.inpaint_model, "sd"))
    return out


def _hub_cache() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _folder_size(path: Path) -> int:
    total = 0
    for item in path.rglob("*"):
        try:
            if item.is_file() and not item.is_symlink():
                total += item.stat().st_size
        except OSError:
            continue
    return total


def hub_models(cache: Path) -> dict[str, int]:
    """Model repositories in the Hugging Face cache and their size on disk (their blobs)."""
    found = {}
    for repo in sorted(cache.glob("models--*")) if cache.is_dir() else []:
        found[repo.name.removeprefix("models--").replace("--", "/")] = _folder_size(repo / "blobs")
    return found


def _server(config):
    from visionloop.models.remote_common import make_server, vision_where

    return make_server(config, config.active.vision, vision_where(config))


def _server_models(config) -> list[dict]:
    from visionloop.models.remote_http import shown

    vision = config.active.vision
    server = _server(config)
    where = shown(server.base_url)
    if vision.backend == "ollama":
        from visionloop.models.ollama import list_models, same_model

        return [{"name": m.get("name") or m["model"], "backend": "ollama", "where": where,
                 "size": m.get("size"), "digest": m.get("digest"), "present": True,
                 "used_by": ["vision.model"] if same_model(m.get("name") or m["model"], vision.model) else []}
                for m in list_models(server)]
    from visionloop.models.openai_compat import list_models

    return [{"name": m["id"], "backend": "openai", "where": where, "size": None,
             "digest": None, "present": True, "used_by": ["vision.model"] if m["id"] == vision.model else []}
            for m in list_models(server)]


def list_all(config) -> tuple[list[dict], list[str]]:
    """Every model the backends can serve, and the errors met (one line each)."""
    from visionloop.config import TINY
    from visionloop.errors import VisionloopError
    from visionloop.paths import maybe_user_path

    entries, errors = [], []
    if config.active.vision.backend != "transformers":
        try:
            entries += _server_models(config)
        except VisionloopError as exc:
            errors.append(str(exc))
        if not any("vision.model" in e["used_by"] for e in entries) and not errors:
            entries.append({"name": config.active.vision.model, "backend": config.active.vision.backend,
                            "where": entries[0]["where"] if entries else None, "size": None, "digest": None,
                            "present": False, "used_by": ["vision.model"]})
    cache = _hub_cache()
    hub = [{"name": name, "backend": "huggingface", "where": str(cache), "size": size, "digest": None,
            "present": True, "used_by": []} for name, size in hub_models(cache).items()]
    entries += hub
    for key, model, kind in used_models(config):
        if kind in ("ollama", "openai"):
            continue
        if model == TINY:
            folder = config.cache_path / "tiny"
            entries.append({"name": f"tiny ({kind})", "backend": "built-in", "where": str(folder), "size": None,
                            "digest": None, "present": True, "used_by": [key]})
            continue
        entry = next((e for e in hub if e["name"] == model), None)
        local = maybe_user_path(model)
        if entry is None and local is not None and local.is_dir():
            entry = {"name": model, "backend": "folder", "where": str(local), "size": _folder_size(local),
                     "digest": None, "present": True, "used_by": []}
            entries.append(entry)
        if entry is None:
            entry = {"name": model, "backend": "huggingface", "where": str(cache), "size": None, "digest": None,
                     "present": False, "used_by": []}
            entries.append(entry)
        entry["used_by"].append(key)
    return entries, errors


def _size(n: int | None) -> str:
    if not n:
        return "-"
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


@json_command("models")
def cmd_models(args, app, out) -> int:
    """Plain: the models grouped by where they are. --json: one line per model (`name`, `backend`,
    `where`, `size`, `digest`, `present`, `used_by`, `error`), a server that cannot be listed as a
    line with its `error`, then the summary."""
    from visionloop.cli.app import one_line

    entries, errors = list_all(app.config)
    if app.json:
        for entry in entries:
            out.result({**entry, "error": None})
        for error in errors:
            out.result({"name": None, "backend": app.config.active.vision.backend, "error": error})
        return 1 if errors else 0
    for error in errors:
        print(f"error: {one_line(error)}", file=sys.stderr)
    groups: dict[tuple, list[dict]] = {}
    for entry in entries:
        groups.setdefault((entry["backend"], entry["where"]), []).append(entry)
    for (backend, where), items in groups.items():
        print(one_line(f"{backend}" + (f" ({where})" if where else "") + ":"))
        width = max(len(e["name"]) for e in items)
        for e in items:
            mark = "*" if e["used_by"] and e["present"] else "!" if e["used_by"] else " "
            note = "  not there: run `visionloop pull`" if not e["present"] else ""
            used = f"  [{', '.join(e['used_by'])}]" if e["used_by"] else ""
            digest = f"  {e['digest'].removeprefix('sha256:')[:12]}" if e["digest"] else ""
            print(one_line(f"  {mark} {e['name']:<{width}}  {_size(e['size']):>8}{digest}{used}{note}"))
    print(f"* used by profile {app.config.profile}; ! used but not there")
    return 1 if errors else 0


@json_command("pull")
def cmd_pull(args, app, out) -> int:
    """Each model of the profile fetched (or said to need nothing): one line each, plain or
    --json (`model`, `key`, `status`, `error`); exit 1 when any failed."""
    from visionloop.cli.app import one_line
    from visionloop.cli.progress import wanted
    from visionloop.errors import VisionloopError

    show = wanted(args, app.json)
    for key, model, kind in used_models(app.config):
        try:
            status, error = _pull_one(app.config, key, model, kind, show), None
        except VisionloopError as exc:
            status, error = "failed", str(exc)
        out.result({"model": model, "key": key, "status": status, "error": error})
        if error and not app.json:
            print(f"error: {one_line(error)}", file=sys.stderr)
        elif not app.json:
            print(one_line(f"{model}: {status}"))
    return 1 if out.counts["failed"] else 0


def _pull_one(config, key: str, model: str, kind: str, show: bool) -> str:
    from visionloop.config import TINY
    from visionloop.errors import ModelError
    from visionloop.paths import maybe_user_path

    if kind == "ollama":
        from visionloop.models.ollama import pull

        server = _server(config)
        last = pull(server, model, _bar(model) if show else None)
        if show:
            print(file=sys.stderr)
        return f"pulled into {server.at}" + (f" ({last['digest']})" if last.get("digest") else "")
    if kind == "openai":
        from visionloop.models.openai_compat import list_models

        server = _server(config)
        served = [m["id"] for m in list_models(server)]
        if model not in served:
            raise ModelError(f"{model} is not served by {server.at} (it serves: {', '.join(served) or 'nothing'}); "
                             "an OpenAI-compatible server loads its models itself: start it with this one")
        return f"served by {server.at}; nothing to fetch"
    if model == TINY:
        return "built in; nothing to fetch"
    local = maybe_user_path(model)
    if local is not None and local.exists():
        return f"a local folder ({local}); nothing to fetch"
    return _hub_download(config, key, model, kind, show)


def _hub_download(config, key: str, model: str, kind: str, show: bool) -> str:
    from visionloop.errors import ModelError
    from visionloop.models.loading import hub_reachable, is_offline

    if is_offline(config.offline):
        raise ModelError(f"{model}: offline (offline: true or HF_HUB_OFFLINE=1): `visionloop pull` needs the "
                         "network; run it where the hub can be reached")
    if not hub_reachable():
        raise ModelError(f"{model}: the Hugging Face hub cannot be reached: check the network (or a proxy), "
                         "then run `visionloop pull` again")
    section = config.active.vision if key.startswith("vision") else config.active.diffusion
    revision = section.revision if key.endswith(".model") else None
    files = HUB_FILES[kind] + (["*.bin"] if config.allow_pickle and kind == "llava" else [])
    if show:
        _enable_hub_progress()
    import huggingface_hub

    try:
        path = huggingface_hub.snapshot_download(model, revision=revision, allow_patterns=files,
                                                 ignore_patterns=HUB_SKIP[kind] or None)
    except Exception as exc:  # the hub's errors (not found, gated, no network) as one line
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelError(f"{model}: cannot download ({first}); check profiles.{config.profile}.{key}") from None
    return f"downloaded to {path}"


def _enable_hub_progress() -> None:
    """The hub's per-file progress bars, which the CLI otherwise turns off (HF_HUB_DISABLE_PROGRESS_BARS)."""
    if os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS") == "1":
        os.environ.pop("HF_HUB_DISABLE_PROGRESS_BARS")
        try:
            import huggingface_hub.utils.tqdm as hub_tqdm
            from huggingface_hub import constants

            constants.HF_HUB_DISABLE_PROGRESS_BARS = hub_tqdm.HF_HUB_DISABLE_PROGRESS_BARS = None
            hub_tqdm.enable_progress_bars()
        except (ImportError, AttributeError):
            pass


def _bar(model: str):
    """A one-line progress bar on stderr for Ollama's pull statuses."""
    def progress(status: str, completed, total) -> None:
        line = f"pulling {model}: {status}"
        if isinstance(total, int) and total > 0 and isinstance(completed, int):
            filled = int(30 * completed / total)
            line += f" [{'#' * filled}{'.' * (30 - filled)}] {100 * completed // total:3d}% of {_size(total)}"
        sys.stderr.write("\r" + line[:120].ljust(120))
        sys.stderr.flush()

    return progress
