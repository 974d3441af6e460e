"""`/open`: an image in the system's viewer. The path is handed over as one argument, never as
shell text, so `&`, `|`, `^` or a leading `-` in a file name stay part of the name."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys


def find_viewer() -> list[str] | None:
    """The command that opens a file in its viewer on macOS and Linux, where there is one.
    (On Windows `open_image` asks the shell itself, through `os.startfile`.)"""
    if sys.platform == "darwin":
        return ["open"]
    for name in ("xdg-open", "gio"):
        found = shutil.which(name)
        if found:
            return [found, "open"] if name == "gio" else [found]
    return None


def open_image(path: str) -> bool:
    """Open `path` in the viewer; False when this system has none. Raises `OSError` when the
    viewer cannot be started (e.g. no program is associated with the file type)."""
    target = os.path.abspath(path)  # never read as an option, whatever the name starts with
    if sys.platform.startswith("win"):
        os.startfile(target)  # ShellExecute's "open": no cmd.exe in between
        return True
    viewer = find_viewer()
    if viewer is None:
        return False
    subprocess.Popen([*viewer, target], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL, start_new_session=True)
    return True
