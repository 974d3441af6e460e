"""What every `from_pretrained` call shares: safetensors only, no remote code by default,
offline when asked, and one clear message when a model cannot be had."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import socket
import sys
import warnings
from pathlib import Path
from typing import Callable, TypeVar
from urllib.parse import urlparse

from visionloop.errors import ModelError

T = TypeVar("T")
log = logging.getLogger(__name__)


#: a full commit sha: what `trust_remote_code` needs as the profile's revision
COMMIT_SHA = re.compile(r"[0-9a-fA-F]{40}")


def is_offline(offline: bool = False) -> bool:
    return offline or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def apply_offline(offline: bool) -> None:
    """Make the config's `offline: true` mean exactly `HF_HUB_OFFLINE=1`, for our code and the
    hub's. huggingface_hub reads the variable once, at import, into `constants.HF_HUB_OFFLINE`,
    and diffusers copies that value into its own modules (`from ... import HF_HUB_OFFLINE`); so
    besides the variable (for what is imported later and for child processes), every module
    already imported that holds the flag gets it set too."""
    if not offline:
        return
    os.environ["HF_HUB_OFFLINE"] = "1"
    for module in list(sys.modules.values()):
        namespace = getattr(module, "__dict__", None)  # never getattr: lazy modules import on it
        if isinstance(namespace, dict) and isinstance(namespace.get("HF_HUB_OFFLINE"), bool):
            namespace["HF_HUB_OFFLINE"] = True


@functools.lru_cache(maxsize=1)
def hub_reachable(timeout: float = 3.0) -> bool:
    """One quick TCP connection to the hub (`$HF_ENDPOINT` or huggingface.co), once per process."""
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        socket.create_connection((endpoint.hostname, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def hub_kwargs(revision: str | None, offline: bool, trust_remote_code: bool, key: str = "revision") -> dict:
    """Keyword arguments for `from_pretrained`. `local_files_only` makes an offline load fail
    at once instead of retrying the network; `key` names the config key of `revision`."""
    kwargs: dict = {"local_files_only": is_offline(offline)}
    if revision:
        kwargs["revision"] = revision
    if trust_remote_code:
        check_remote_code(revision, trust_remote_code, key)
        kwargs["trust_remote_code"] = True
    return kwargs


def check_remote_code(revision: str | None, trust_remote_code: bool, key: str = "revision") -> None:
    """Remote code runs only from a pinned commit: a branch or a tag can move under the user
    after they have read the code. `key` names the config key holding `revision`."""
    if trust_remote_code and not (isinstance(revision, str) and COMMIT_SHA.fullmatch(revision)):
        got = f"got {revision!r}" if revision else "it is not set"
        raise ModelError(f"{key}: trust_remote_code needs a pinned commit sha (40 hex characters) here, {got}")


#: kind -> (the file a folder of that kind holds, what it is, what a folder with only the other file holds)
_FOLDER_KINDS = {"llava": ("config.json", "a transformers vision-language model",
                           ("model_index.json", "a diffusers pipeline")),
                 "sd": ("model_index.json", "a diffusers pipeline", ("config.json", "a single model"))}


def check_model_folder(path: Path, kind: str, model_id: str, check: str) -> None:
    """A local model path must be a folder holding the right kind of model; else one line."""
    if not path.is_dir():
        raise ModelError(f"{model_id}: is a file, not a model folder {check}")
    marker, what, (other, other_what) = _FOLDER_KINDS[kind]
    if (path / marker).is_file():
        return
    if (path / other).is_file():
        raise ModelError(f"{model_id}: holds {other_what} ({other}), not {what} ({marker}) {check}")
    raise ModelError(f"{model_id}: no {marker} in this folder, so it is not {what} {check}")


def check_hub_id(model_id: str, check: str) -> None:
    """A name that is no local path must be a valid hub id before the hub is asked about it."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(model_id)
    except HFValidationError:
        raise ModelError(f"{model_id}: no such folder, and not a hub model id of the form 'namespace/name' "
                         f"(letters, digits, '-', '_', '.') {check}") from None


PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def lora_target(text: str, allow_pickle: bool, check: str) -> tuple[str, str | None]:
    """Where `load_lora_weights` should look for the LoRA the config names `text`: a folder or
    hub id, and a file name when `text` is a file. A pickle file is refused unless allowed, a
    missing path is never sent to the hub, and `check` (the config key) ends every message."""
    from visionloop.paths import user_path

    path = user_path(text)
    if path.is_file():
        if path.suffix.lower() != ".safetensors" and not allow_pickle:
            raise ModelError(f"{text}: not a .safetensors file; refusing pickle weights (set allow_pickle: true "
                             f"in the config only if you trust this file) {check}")
        return str(path.parent), path.name
    if path.is_dir():
        if not allow_pickle and not any(path.glob("*.safetensors")):
            raise ModelError(f"{text}: no .safetensors file in this folder {check}")
        return str(path), None
    if text.startswith(("/", ".", "~")) or path.suffix.lower() in (".safetensors", *PICKLE_SUFFIXES):
        raise ModelError(f"{text}: LoRA file not found {check}")
    check_hub_id(text, check)
    return text, None


def _hint(source: str) -> str:
    if Path(source).exists():
        return ""
    return (f"; fetch the profile's models while online with `visionloop pull` (only the files the "
            f"loaders need), or `hf download {source}`, or point the profile at a local folder")


def load_guarded(source: str, load: Callable[[], T]) -> T:
    """Run `load()`, turning the hub's and the loaders' failures into one-line `ModelError`s."""
    try:
        return load()
    except ModelError:
        raise
    except (OSError, EnvironmentError, ValueError) as exc:
        text = str(exc)
        low = text.lower()
        if "safetensors" in low or ".bin" in low and "use_safetensors" in low:
            raise ModelError(f"{source}: no safetensors weights; refusing pickle files "
                             "(set allow_pickle: true in the config only if you trust this model)") from None
        if "trust_remote_code" in low:
            raise ModelError(f"{source}: needs trust_remote_code, which is off "
                             "(set trust_remote_code: true and the profile's vision.revision to a commit sha)") from None
        if any(s in low for s in ("offline", "local_files_only", "couldn't connect", "cannot find the requested files",
                                  "connection", "not a local folder", "does not appear to have", "is not a valid model")):
            offline = " (offline mode)" if is_offline() else ""
            if not is_offline() and not hub_reachable():
                offline = " (no network)"
            raise ModelError(f"{source}: model not found in the local cache and the hub cannot be reached"
                             f"{offline}{_hint(source)}") from None
        if "repository not found" in low or "401" in low or "404" in low:
            raise ModelError(f"{source}: no such model on the hub (check the model id in the profile)") from None
        first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        raise ModelError(f"{source}: cannot load model: {first}") from None
    except Exception as exc:  # safetensors' own error derives from Exception only
        if type(exc).__name__ != "SafetensorError":
            raise
        raise ModelError(f"{source}: damaged or not a safetensors file ({str(exc).strip() or 'unreadable'})") from None


def weights_kwargs(allow_pickle: bool) -> dict:
    """`use_safetensors=True` unless the user explicitly allowed pickle checkpoints."""
    return {} if allow_pickle else {"use_safetensors": True}


@contextlib.contextmanager
def quiet_loading():
    """No "Loading weights" or "Writing model shards" bars from transformers (or diffusers,
    when it is in use) while a model loads or the tiny models are built: they are noise in a
    terminal and garbage under --json. Denoising bars are set per call.

    Third-party warnings raised while loading (e.g. huggingface_hub's deprecation notices
    before an offline failure) are not ours to act on: they are hidden unless logging is at
    INFO or lower (-v), so a failed load stays one line."""
    from transformers.utils import logging as tlog

    libs = [tlog]
    if "diffusers" in sys.modules:  # never import diffusers just to silence it
        from diffusers.utils import logging as dlog

        libs.append(dlog)
    was = [lib.is_progress_bar_enabled() for lib in libs]
    for lib in libs:
        lib.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            if not log.isEnabledFor(logging.INFO):
                warnings.simplefilter("ignore")
            yield
    finally:
        for lib, on in zip(libs, was):
            if on:
                lib.enable_progress_bar()


_WEIGHTS = (".safetensors", ".bin", ".pt", ".ckpt", ".gguf")


def weights_size(model_id: str) -> int | None:
    """Bytes of weight files a model will load from disk: a local folder's, or the newest
    snapshot of a hub id in the Hugging Face cache; None when nothing is on disk yet. Cheap
    (a directory walk, no hub call); only for the "loading ..." line."""
    folder = Path(model_id).expanduser()
    if not folder.is_dir():
        try:
            from huggingface_hub.constants import HF_HUB_CACHE
        except ImportError:  # pragma: no cover - huggingface_hub comes with transformers
            return None
        snapshots = Path(HF_HUB_CACHE) / ("models--" + model_id.replace("/", "--")) / "snapshots"
        found = sorted(snapshots.glob("*"), key=lambda p: p.stat().st_mtime) if snapshots.is_dir() else []
        if not found:
            return None
        folder = found[-1]
    try:
        total = sum(p.stat().st_size for p in folder.rglob("*") if p.suffix in _WEIGHTS and p.is_file())
    except OSError:
        return None
    return total or None
