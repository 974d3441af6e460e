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


#: how long `/open` waits to hear whether the viewer failed: `xdg-open` with no viewer to hand
#: the file to (a headless machine) exits 3 at once; one that has a viewer exits 0 or keeps running
#: (some fall back to a program that stays in the foreground until its window closes)
VIEWER_WAIT = 2.0


class ViewerFailed(OSError):
    """The viewer command ran and said it could not open the file (a non-zero exit status)."""


def open_image(path: str) -> bool:
    """Open `path` in the viewer; False when this system has none. Raises `OSError` when the
    viewer cannot be started (e.g. no program is associated with the file type), and
    `ViewerFailed` when it started and exited with an error within `VIEWER_WAIT` seconds."""
    target = os.path.abspath(path)  # never read as an option, whatever the name starts with
    if sys.platform.startswith("win"):
        os.startfile(target)  # ShellExecute's "open": no cmd.exe in between
        return True
    viewer = find_viewer()
    if viewer is None:
        return False
    proc = subprocess.Popen([*viewer, target], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        status = proc.wait(timeout=VIEWER_WAIT)
    except subprocess.TimeoutExpired:  # still running: the viewer has the file
        return True
    if status != 0:
        name = os.path.basename(viewer[0])
        raise ViewerFailed(f"{name} exited with status {status}" if status > 0
                           else f"{name} was stopped by signal {-status}")
    return True
