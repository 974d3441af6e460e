"""Errors a user can cause and fix.

Every subclass of `VisionloopError` carries a one-line message that names the file (or the
argument) and the reason. The CLI prints that line and exits 1; it shows a traceback only
under `-v`. Anything else that escapes is a bug and is reported as one.
"""

from __future__ import annotations

from concurrent.futures import CancelledError


class VisionloopError(Exception):
    """A mistake the user can fix; `str(error)` is the whole message."""

    exit_code = 1


class UsageError(VisionloopError):
    """The command line itself is wrong (exit code 2, like argparse)."""

    exit_code = 2


class ConfigError(VisionloopError):
    """The configuration file is missing, malformed, or holds an unknown or mistyped key."""


class InputError(VisionloopError):
    """A tool argument is missing, of the wrong type, or out of range."""


class ImageError(VisionloopError):
    """An image file cannot be used: missing, empty, truncated, not an image, too large."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class ModelError(VisionloopError):
    """A model cannot be loaded: not cached while offline, no safetensors weights, etc."""


class PluginError(VisionloopError):
    """A plugin is broken or two plugins claim the same tool name."""


class Cancelled(VisionloopError):
    """The job in hand was cancelled (Ctrl-C in the chat)."""


class ShuttingDown(Cancelled, CancelledError):
    """The loop was closed before this job started: it never ran. Also a `CancelledError`, so
    that a source waiting on the job's future (the watcher) treats it as a job never started."""

    def __init__(self, message: str = "visionloop is shutting down: the job was not started"):
        super().__init__(message)
