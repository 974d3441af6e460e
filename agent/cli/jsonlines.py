"""`--json` output, one rule for every command: JSON Lines.

One JSON object per line per result, printed and flushed as the result completes, then exactly
one summary line, `{"summary": {"command", "results", "ok", "failed", ..., "exit", "error"}}`.
Nothing else goes to stdout. A failed result carries its message in its `error` field (null
when fine) and says it once on stderr too (`error: ...`). The summary's `error` is a failure of
the command as a whole (a workflow that does not load, a bad `--out`), null otherwise; `exit` is
the exit code the command returns.

Without `--json` the same object only counts, so a command is written once for both outputs.
"""

from __future__ import annotations

import functools
import json
import sys
from typing import Any, Callable

from visionloop.errors import VisionloopError


def dumps(obj: Any) -> str:
    """One compact line of JSON (text as it is, not \\u-escaped; paths and the like as strings)."""
    return json.dumps(obj, ensure_ascii=False, default=str, separators=(",", ":"))


def message(exc: BaseException) -> str:
    """An error's full message for `error`: every problem of an error that lists several."""
    problems = getattr(exc, "problems", None)
    if isinstance(problems, list) and problems:
        return "\n".join(str(p) for p in problems)
    return str(exc)


def _write(stream, line: str) -> None:
    stream.write(line + "\n")
    stream.flush()


class JsonLines:
    """One command's output under `--json`; with `enabled` False (plain output) it only counts.

    `counts` names the counters the summary always shows (the default: ok and failed); a result
    adds one to the counter it names, by default "ok" when its `error` is null, else "failed".
    `fields` are the command's own summary keys with their values until `end` says better, so
    that a command's summary has the same keys however it ends."""

    def __init__(self, command: str, enabled: bool = True, counts: tuple[str, ...] = ("ok", "failed"),
                 fields: dict | None = None):
        self.command = command
        self.enabled = enabled
        self.counts = dict.fromkeys(counts, 0)
        self.fields = dict(fields or {})
        self.results = 0
        self.ended = False

    def result(self, obj: dict, count: str | None = None, say: bool | str = True) -> None:
        """Print `obj` as one line (under --json). `say`: also its `error` on stderr, one line
        (False for what the summary says as a whole, e.g. the items a Ctrl-C skipped; a string
        says that instead of the bare `error`)."""
        count = count or ("ok" if obj.get("error") is None else "failed")
        self.counts[count] = self.counts.get(count, 0) + 1
        self.results += 1
        if not self.enabled:
            return
        _write(sys.stdout, dumps(obj))
        if say and obj.get("error"):
            from visionloop.cli.app import one_line

            _write(sys.stderr, f"error: {one_line(say if isinstance(say, str) else obj['error'])}")

    def end(self, exit: int, error: str | None = None, **extra: Any) -> int:
        """The summary line (once; a second call prints nothing); returns `exit`."""
        if not self.ended and self.enabled:
            summary = {"command": self.command, "results": self.results, **self.counts, **self.fields, **extra,
                       "exit": exit, "error": error}
            _write(sys.stdout, dumps({"summary": summary}))
        self.ended = True
        return exit


Handler = Callable[..., int]


def json_command(command: str | None = None, counts: tuple[str, ...] = ("ok", "failed"),
                 fields: dict | None = None) -> Callable[[Handler], Handler]:
    """Decorate `handler(args, app, out)` into a sub-command handler `(args, app)`: `out` is the
    command's `JsonLines` (`counts`, `fields`: see there); the summary line is printed however
    the handler ends. An error raised
    (`VisionloopError`) or a Ctrl-C still ends in the summary, its exit code the one `main`
    returns; the error is then re-raised, so that `main` says it on stderr as for any command."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        def run(args, app) -> int:
            out = JsonLines(command or getattr(args, "command", None) or "?", app.json, counts, fields)
            try:
                code = int(handler(args, app, out) or 0)
            except VisionloopError as exc:
                out.end(exc.exit_code, error=message(exc))
                raise
            except KeyboardInterrupt:
                out.end(130, error="interrupted")
                raise
            return out.end(code)

        return run

    return wrap
