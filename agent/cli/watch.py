"""`visionloop watch`: run the watch rules until Ctrl-C/SIGTERM, or once (`--once`).

    visionloop watch                                   every rule in the config's `watch:` list
    visionloop watch FOLDER --workflow W --out DIR     one rule from the command line
    visionloop watch --once [--json]                   process what is there, say each file, then the counts
                                                       (exit 1 when any file failed or is not done)
    visionloop watch --status [--json]                 ledger counts per rule
    visionloop watch --retry-failed [--once]           put failed files back in line, then watch
    visionloop watch --reprocess [--once]              run every file again, even those already done
"""

from __future__ import annotations

import math
import signal
import sys

from visionloop.cli.jsonlines import json_command
from visionloop.errors import UsageError
from visionloop.paths import resolved_path, user_path


def add_commands(sub, common) -> None:
    p = sub.add_parser("watch", parents=[common()], help="run workflows on new files in watched folders",
                       description="Run a workflow on every new file in the watched folders, once each. "
                                   "Rules come from the config's `watch:` list, or from FOLDER --workflow W --out DIR.")
    p.add_argument("folder", nargs="?", metavar="FOLDER", help="watch this folder only (needs --workflow and --out)")
    p.add_argument("--workflow", metavar="W", help="workflow name or file for FOLDER")
    p.add_argument("--input", metavar="NAME", help="the workflow input that receives the file (default: image)")
    p.add_argument("--pattern", metavar="GLOB", action="append", help="file names to take (repeatable; default: "
                                                                      "*.jpg *.jpeg *.png *.webp)")
    p.add_argument("--settle", metavar="S", type=float, default=None,
                   help="seconds a file must stay unchanged before it is taken (default: 2)")
    p.add_argument("--recursive", action="store_true", help="watch sub-folders of FOLDER too")
    p.add_argument("--once", action="store_true", help="process the files there now, then exit "
                                                       "(exit 1 when any file failed or is not done, for cron)")
    p.add_argument("--status", action="store_true", help="print the ledger counts per rule and exit")
    p.add_argument("--retry-failed", action="store_true", help="put failed files back in line before watching")
    p.add_argument("--reprocess", action="store_true", help="run every file again, even those already done "
                                                            "with this workflow (each once)")
    p.add_argument("--poll", action="store_true", help="poll the folders instead of using OS events "
                                                       "(network shares, inotify limits)")
    p.set_defaults(handler=cmd_watch)


# FOLDER-only flags: without FOLDER the rules come from the config, which would ignore them.
_FOLDER_FLAGS = (("workflow", "--workflow"), ("out", "--out"), ("input", "--input"), ("pattern", "--pattern"),
                ("recursive", "--recursive"))


def _rule(fields: dict, where: str):
    """`WatchRule.model_validate(fields)`, a one-line error naming the flag or rule on failure."""
    from pydantic import ValidationError

    from visionloop.config import WatchRule

    flags = {"settle": "--settle", "patterns": "--pattern", "input": "--input", "output": "--out",
             "workflow": "--workflow", "folder": "FOLDER", "recursive": "--recursive"}
    try:
        return WatchRule.model_validate(fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err.get("loc") else ""
        message = err["msg"].replace("Input should be", "must be")
        for words, sign in (("greater than or equal to", ">="), ("less than or equal to", "<="),
                            ("greater than", ">"), ("less than", "<")):
            message = message.replace(words, sign)
        raise UsageError(f"{flags.get(field, field)}: {message} ({where})") from None


def _rules(args, app):
    if args.settle is not None and not math.isfinite(args.settle):  # pydantic lets inf through
        raise UsageError(f"--settle: must be a finite number of seconds, got {args.settle}")
    if args.folder is None:
        for attr, flag in _FOLDER_FLAGS:
            if getattr(args, attr, None) not in (None, False):  # given at all, even as ""
                raise UsageError(f"{flag} needs a FOLDER (or use the config's `watch:` rules without it)")
        rules = list(app.config.watch)
        if args.settle is not None:  # re-validated: model_copy(update=...) would skip the checks
            rules = [_rule({**r.model_dump(), "settle": args.settle}, f"watch rule {r.name!r}") for r in rules]
        return rules
    out = getattr(args, "out", None)
    if not args.workflow or not out:
        raise UsageError("watch FOLDER needs --workflow W and --out DIR")
    fields = {"name": resolved_path(args.folder, "watch FOLDER").name or "folder", "folder": args.folder,
              "workflow": args.workflow, "input": "image" if args.input is None else args.input, "output": out,
              "recursive": args.recursive}
    if args.pattern:
        fields["patterns"] = args.pattern
    if args.settle is not None:
        fields["settle"] = args.settle
    return [_rule(fields, f"watch {args.folder}")]


def _fingerprint(rule, app) -> str | None:
    """The rule's current fingerprint, so --status counts this workflow's rows; None (count every
    row of the rule) when the workflow cannot be loaded just now."""
    from visionloop.errors import VisionloopError
    from visionloop.watch.rules import fingerprint
    from visionloop.workflows import load_workflow

    try:
        return fingerprint(load_workflow(rule.workflow, app.config, app.registry), rule)
    except VisionloopError:
        return None


def _status(rules, app, out) -> int:
    """The ledger counts per rule: plain `NAME: done 3, failed 1`, or under --json one line per
    rule, `{"rule", "output", "counts", "error"}`."""
    from visionloop.watch import Ledger, ledger_path
    from visionloop.watch.names import shown

    for rule in rules:
        output = user_path(rule.output, f"watch rule {rule.name!r}: output")
        counts: dict = {}
        if ledger_path(output).exists():
            ledger = Ledger(rule.output, lock=False)
            try:
                fp = _fingerprint(rule, app)
                counts = ledger.counts({rule.name: fp} if fp else None).get(rule.name, {})
            finally:
                ledger.close()
        out.result({"rule": rule.name, "output": str(output), "counts": counts, "error": None})
        if not app.json:
            line = ", ".join(f"{k} {v}" for k, v in counts.items()) or "nothing recorded yet"
            print(f"{shown(rule.name)}: {line}")
    return 0


def _announcer(app, out):
    """`(announce, on_result)` for the watcher and its runner: each file's outcome as the watcher
    announces it, a plain line on stdout, or under --json that file's line (`Result.to_json`),
    a failure also on stderr (`on_result` keeps the result the announcement is about)."""
    if not app.json:
        return (None if getattr(app.args, "quiet", False) else (lambda line: print(line, flush=True))), None
    latest: dict = {}  # the result the runner gave last: the one the watcher announces next

    def announce(line: str) -> None:
        result = latest.pop("result", None)
        if result is None:  # nothing the runner gave: not a file's outcome
            return
        obj = result.to_json(latest["rule"])
        # a file given up on ("unfinished") is said on stderr by the watcher itself
        out.result(obj, count={"done": "ok"}.get(obj["status"], obj["status"]),
                   say=line if obj["status"] == "failed" else False)

    return announce, lambda rs, result: latest.update(rule=rs.name, result=result)


@json_command("watch", counts=("ok", "failed", "unfinished", "skipped"))
def cmd_watch(args, app, out) -> int:
    from visionloop.watch import WatchError

    rules = _rules(args, app)
    if not rules:
        raise WatchError("no watch rules: add a `watch:` section to the config, or give FOLDER --workflow W --out DIR")
    if args.status:
        return _status(rules, app, out)
    return _watch(args, rules, app, out)


def _watch(args, rules, app, out) -> int:
    """Watch until a signal, or `--once`; the summary counts what was done (ok, failed, unfinished,
    and the files left alone as `skipped`); exit 1 from `--once` when any file failed or is not done."""
    from visionloop.watch import Watcher

    quiet = app.json or getattr(args, "quiet", False)
    # --once names the files it waits for (one stderr line each, also under --json: stdout stays JSON)
    on_wait = None if getattr(args, "quiet", False) else (lambda line: print(line, file=sys.stderr, flush=True))
    announce, on_result = _announcer(app, out)
    watcher = Watcher(rules, app.loop, app.registry, app.config, announce=announce, poll=args.poll, on_wait=on_wait,
                      reprocess=args.reprocess)
    watcher.runner.on_result = on_result
    # SIGTERM and Ctrl-C ask for a clean stop: the job in hand finishes (or is re-queued), exit 0.
    previous = {sig: signal.signal(sig, lambda *_: watcher.request_stop()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        if args.retry_failed:
            n = watcher.retry_failed()
            if not quiet:
                print(f"{n} failed file(s) put back in line", file=sys.stderr)
        if args.once:
            counts = watcher.run_once()
            if not app.json:
                unfinished = f", unfinished {counts['unfinished']}" if counts["unfinished"] else ""
                print(f"processed {counts['processed']}, failed {counts['failed']}, skipped {counts['skipped']}"
                      f"{unfinished}")
            # like a batch `run`: cron sees a failure, and a file left not done (unreadable, interrupted)
            code = 1 if counts["failed"] or counts["unfinished"] else 0
        else:
            if not quiet:
                from visionloop.watch.names import shown

                folders = ", ".join(f"{shown(rs.folder)} -> {shown(rs.output)}" for rs in watcher.rules)
                print(f"watching {folders} (Ctrl-C to stop)", file=sys.stderr, flush=True)
            watcher.run_forever()
            counts, code = watcher.counts, 0
        return out.end(code, ok=counts["processed"], failed=counts["failed"], unfinished=counts["unfinished"],
                       skipped=counts["skipped"])
    finally:
        watcher.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        app.loop.close()
