"""What every `from_pretrained` call shares: safetensors only, no remote code by default,
offline when asked, and one clear message when a model cannot be had."""

from __future__ import annotations

import functools
import os
import socket
from pathlib import Path
from typing import Callable, TypeVar
from urllib.parse import urlparse

from agent.errors import ModelError

T = TypeVar("T")


def is_offline(offline: bool = False) -> bool:
    return offline or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


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


def hub_kwargs(revision: str | None, offline: bool, trust_remote_code: bool) -> dict:
    """Keyword arguments for `from_pretrained`. `local_files_only` makes an offline load fail
    at once instead of retrying the network."""
    kwargs: dict = {"local_files_only": is_offline(offline)}
    if revision:
        kwargs["revision"] = revision
    if trust_remote_code:
        if not revision:
            raise ModelError("trust_remote_code needs a pinned revision (a commit sha) in the profile")
        kwargs["trust_remote_code"] = True
    return kwargs


def _hint(source: str) -> str:
    if Path(source).exists():
        return ""
    return (f"; download it while online with `huggingface-cli download {source}` "
            f"(or `hf download {source}`), or point the profile at a local folder")


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
                             "(set trust_remote_code: true and a pinned revision in the config)") from None
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


def weights_kwargs(allow_pickle: bool) -> dict:
    """`use_safetensors=True` unless the user explicitly allowed pickle checkpoints."""
    return {} if allow_pickle else {"use_safetensors": True}
