"""Where workflows are found by name: the one list that `run NAME` searches and `workflows` shows.

In order: the config's `workflows:` folder (`config`), the user's own folder,
`<user config folder>/workflows` (`user`), and the examples that ship with visionloop
(`bundled`). A name found in an earlier folder shadows the same name in a later one.

The examples and the commented default `config.yaml` are the top-level `workflows/` folder and
`config.yaml` of the source tree; a wheel carries them as package data, `agent/examples/` and
`agent/config.yaml` (see `pyproject.toml`), read here with `importlib.resources`.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import platformdirs

from visionloop.paths import user_path

SUFFIXES = (".yaml", ".yml")
_CHECKOUT = Path(__file__).resolve().parents[2]  # the source tree, in a checkout or editable install


@dataclass(frozen=True)
class Folder:
    path: Path
    source: str  # "config", "user" or "bundled"


@dataclass
class Entry:
    """One workflow file in one of the folders; `shadowed_by` is the file that `run NAME` finds instead."""

    name: str
    path: Path
    source: str
    shadowed_by: Path | None = None


def _packaged(name: str) -> Path | None:
    """`name` inside the installed `agent` package, when it is a plain file or folder on disk."""
    found = resources.files("visionloop") / name
    return found if isinstance(found, Path) else None


def bundled_folder() -> Path | None:
    """The example workflows that ship with visionloop: the package's `examples/` in an
    installed wheel, else the checkout's `workflows/`; None when neither is there."""
    packaged = _packaged("examples")
    if packaged is not None and packaged.is_dir():
        return packaged
    checkout = _CHECKOUT / "workflows"
    return checkout if checkout.is_dir() else None


def bundled_config() -> Path | None:
    """The commented default `config.yaml` (package data in a wheel, the checkout's otherwise)."""
    packaged = _packaged("config.yaml")
    if packaged is not None and packaged.is_file():
        return packaged
    checkout = _CHECKOUT / "config.yaml"
    return checkout if checkout.is_file() else None


def user_folder() -> Path:
    """The user's own workflows folder, `<user config folder>/workflows` (it may not exist)."""
    from visionloop.config import APP

    return Path(platformdirs.user_config_dir(APP)) / "workflows"


def workflow_folders(config) -> list[Folder]:
    """The folders `run NAME` searches, in order, each once (an existing folder counted by its
    real path): the config's, the user's, the bundled examples."""
    configured = user_path(config.workflows, "workflows")
    candidates = [Folder(configured, "config")]
    if not configured.is_absolute() and getattr(config, "source", None):
        candidates.append(Folder(Path(config.source).parent / configured, "config"))
    candidates.append(Folder(user_folder(), "user"))
    bundled = bundled_folder()
    if bundled is not None:
        candidates.append(Folder(bundled, "bundled"))
    folders: list[Folder] = []
    seen: set[Path] = set()
    for folder in candidates:
        key = folder.path.resolve()
        if key not in seen:
            seen.add(key)
            folders.append(folder)
    return folders


def find_in_folders(name: str, folders: list[Folder]) -> Path | None:
    """NAME, NAME.yaml or NAME.yml in the first folder that has one."""
    for folder in folders:
        for candidate in (name, *(name + s for s in SUFFIXES)):
            if (folder.path / candidate).is_file():
                return folder.path / candidate
    return None


def list_workflows(config) -> list[Entry]:
    """Every workflow file in the searched folders, in search order; one whose name an earlier
    file already answers to is marked `shadowed_by` that file. An unreadable folder raises
    `OSError` (with `.filename` set to it)."""
    entries: list[Entry] = []
    first: dict[str, Path] = {}
    for folder in workflow_folders(config):
        if not folder.path.is_dir():
            continue
        try:
            files = [p for p in folder.path.iterdir() if p.suffix in SUFFIXES and p.is_file()]
        except OSError as exc:
            exc.filename = str(folder.path)
            raise
        files.sort(key=lambda p: (p.stem, SUFFIXES.index(p.suffix)))  # NAME.yaml before NAME.yml, as found
        for path in files:
            entries.append(Entry(path.stem, path, folder.source, first.get(path.stem)))
            first.setdefault(path.stem, path)
    return entries
