"""Workflow sub-commands: `validate`, `run`, `replay` and `workflows`.

Argument parsing and printing only; the work is in `visionloop.workflows`. A run goes through the
loop like any tool call, so the models load once, also across the items of a batch.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from visionloop.errors import UsageError, VisionloopError
from visionloop.paths import user_path
from visionloop.workflows.plan import add_run_arguments, build_plan, format_plan, parse_inputs


def add_commands(sub, common) -> None:
    p = sub.add_parser("validate", parents=[common()], help="check workflow files without loading any model",
                       description="Check workflow files (YAML, fields, tools, arguments, references) "
                                   "without loading any model. Exit 0 when all are valid, 1 otherwise.")
    p.add_argument("files", nargs="+", metavar="FILE", help="workflow file, or the name of one in the workflows folder")
    p.set_defaults(handler=cmd_validate)

    p = sub.add_parser("run", parents=[common()], help="run a workflow (once, or per image of a folder or glob)",
                       description="Run a workflow. An image input given a folder or a glob runs it once per image.")
    add_run_arguments(p)
    p.set_defaults(handler=cmd_run)

    p = sub.add_parser("replay", parents=[common()], help="re-run a run's manifest and compare the results",
                       description="Run the calls recorded in a run manifest again and say whether the "
                                   "results are bit for bit identical (exit 0) or what differs (exit 1).")
    p.add_argument("manifest", metavar="MANIFEST", help="a manifest.json, or the run folder holding it")
    p.set_defaults(handler=cmd_replay)

    p = sub.add_parser("workflows", parents=[common()], help="list the workflows `run NAME` finds, and where each comes from")
    p.set_defaults(handler=cmd_workflows)


def _out_dir(args, app) -> Path:
    out = getattr(args, "out", None)
    if out is not None and not str(out).strip():  # `--out "$DIR"` with DIR unset: not the default folder
        raise UsageError("--out: the folder name is empty (leave --out out to use the configured output folder)")
    return user_path(out or app.config.output, "--out")


def _note(app, text: str) -> None:
    if not app.json and not getattr(app.args, "quiet", False):
        print(text, file=sys.stderr)


# --- validate ------------------------------------------------------------------------------

def cmd_validate(args, app) -> int:
    from visionloop.workflows import WorkflowError, load_workflow

    report = []
    for name in args.files:
        try:
            wf = load_workflow(name, app.config, app.registry)
            report.append({"file": str(wf.source), "ok": True, "name": wf.name, "problems": []})
        except WorkflowError as exc:
            # "path" is always a string: "" for a problem with the file as a whole
            problems = [{"line": getattr(p, "line", 0), "path": _loc(p.loc) if getattr(p, "loc", ()) else "",
                         "message": getattr(p, "message", str(p)), "text": str(p)} for p in exc.problems]
            report.append({"file": name, "ok": False, "problems": problems})
    if app.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        for entry in report:
            if entry["ok"]:
                print(f"{entry['file']}: ok")
            for p in entry["problems"]:
                print(p["text"])
    return 0 if all(e["ok"] for e in report) else 1


def _loc(loc) -> str:
    from visionloop.yamlsource import format_loc

    return format_loc(loc)


# --- run -----------------------------------------------------------------------------------

def _print_outcome(outcome, app) -> None:
    for step in outcome.steps:
        mark = "ok" if step["status"] == "ok" else "FAILED"
        seconds = f" {step['seconds']:.2f}s" if step.get("seconds") is not None else ""
        _note(app, f"  {mark:<6} {step['id']} ({step['tool']}){seconds}")
    for name, value in outcome.outputs.items():
        print(f"{name}: {value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)}")
    print(f"run folder: {outcome.run_dir}")
    if outcome.error:
        where = f" at step {outcome.failed_step}" if outcome.failed_step else ""
        print(f"error: workflow {outcome.workflow} failed{where}: {outcome.error}", file=sys.stderr)


def cmd_run(args, app) -> int:
    from visionloop.loop import wait
    from visionloop.workflows import check_inputs, load_workflow, run_workflow
    from visionloop.workflows.batch import RunInterrupted, batch_input, run_batch

    wf = load_workflow(args.workflow, app.config, app.registry)
    given = parse_inputs(args.inputs)
    out_dir = _out_dir(args, app)
    batch = batch_input(wf, given)
    # Every input is checked (for a batch: with its first file) before any model loads.
    values = check_inputs(wf, {**given, batch[0]: str(batch[1][0])} if batch else given,
                          hint="--input {name}=VALUE")
    if args.dry_run:
        plan = build_plan(wf, {**values, batch[0]: str(user_path(given[batch[0]]))} if batch else values,
                          app.config, app.registry, out_dir, batch)
        print(json.dumps(plan, ensure_ascii=False) if app.json else format_plan(plan))
        return 0
    from visionloop.images import ensure_output_dir

    ensure_output_dir(out_dir)  # once, up front: a bad --out is one error, not one failed item per file
    loop = app.loop
    quiet_steps = batch is not None  # one batch bar, not a diffusers bar per item under it

    def run_one(inputs):
        started: list = []  # the run folder, once there is one

        def job(ctx):
            return run_workflow(wf, inputs, dataclasses.replace(ctx, progress=False) if quiet_steps else ctx,
                                app.registry, out_dir, on_run_dir=started.append)
        try:
            return wait(loop, loop.submit(job))  # on Ctrl-C: returns once the run has recorded how it ended
        except KeyboardInterrupt:
            raise RunInterrupted(started[0] if started else None) from None

    if batch is None:
        try:
            outcome = run_one(values)
        except RunInterrupted as exc:
            _print_interrupted(wf, exc.run_dir, app)
            raise
        if app.json:
            print(json.dumps(outcome.to_json(), ensure_ascii=False, default=str))
        else:
            _print_outcome(outcome, app)
        return 0 if outcome.ok else 1
    name, files = batch
    result = run_batch(wf, given, name, files, run_one, progress=loop.ctx.progress)
    if app.json:
        print(json.dumps(result.to_json(), ensure_ascii=False, default=str))
    else:
        for item in result.items:
            if item.status == "ok":
                print(f"ok      {item.input} -> {item.run_dir}")
            else:
                print(f"{item.status:<7} {item.input}: {item.error}")
        s = result.summary
        skipped = f", {s['skipped']} not run (interrupted)" if result.interrupted else ""
        print(f"{wf.name}: {s['total']} items, {s['ok']} ok, {s['failed']} failed{skipped}")
    if result.interrupted:
        print("interrupted", file=sys.stderr)
        return 130
    return 0 if result.status == "ok" else 1


def _print_interrupted(wf, run_dir: str | None, app) -> None:
    """What a single run interrupted by Ctrl-C leaves: with --json still one document, its
    status "interrupted" and its steps as the manifest recorded them."""
    manifest = Path(run_dir) / "manifest.json" if run_dir else None
    if not app.json:
        if run_dir:
            print(f"run folder: {run_dir}")
        return
    try:
        steps = json.loads(manifest.read_text(encoding="utf-8")).get("steps") or [] if manifest else []
    except (OSError, ValueError, AttributeError):
        steps = []
    print(json.dumps({"workflow": wf.name, "status": "interrupted", "outputs": {}, "steps": steps,
                      "manifest": str(manifest) if manifest else None}, ensure_ascii=False, default=str))


# --- replay --------------------------------------------------------------------------------

def cmd_replay(args, app) -> int:
    import os

    from visionloop.loop import wait
    from visionloop.paths import user_path as _path
    from visionloop.workflows.replay import read_manifest, replay
    from visionloop.workflows.replay_config import replay_config

    out_dir = _out_dir(args, app)
    # The recorded profile, models, device and dtype, checked before anything runs or is written.
    data = read_manifest(args.manifest)
    where = _path(args.manifest)
    where = where / "manifest.json" if where.is_dir() else where
    flags = {key: getattr(args, key, None) or os.environ.get(f"VISIONLOOP_{key.upper()}")
             for key in ("profile", "device", "dtype")}
    if app._loop is None:  # a one-shot command: its loop is made with the recorded config
        app.config, warnings = replay_config(data, str(where), app.config, flags)
        for line in warnings:
            print(line, file=sys.stderr)
    loop = app.loop
    result = wait(loop, loop.submit(lambda ctx: replay(args.manifest, ctx, app.registry, out_dir)))
    if app.json:
        print(json.dumps(result.to_json(), ensure_ascii=False, default=str))
    else:
        if result.identical and result.status != "ok":  # the same, but the same failure: say so
            where = f" at step {result.failed_step}" if result.failed_step else ""
            if result.original_status == "failed":
                print(f"identical to the original run, which failed again{where}: {result.error}")
            else:  # e.g. "running": the original was killed; its steps are all there is to compare
                print(f"the same calls gave the same results, but {result.error}")
        elif result.identical:
            print(f"identical: all {len(result.steps)} steps gave the same text and the same pixels")
        else:
            print("not identical:")
            for line in result.differences:
                print(f"  {line}")
        print(f"run folder: {result.run_dir}")
    return 0 if result.identical and result.status == "ok" else 1


# --- workflows -----------------------------------------------------------------------------

def cmd_workflows(args, app) -> int:
    """The workflows `run NAME` can find, folder by folder in its search order (the config's,
    the user's, the bundled examples), each marked with where it comes from; a name an earlier
    folder already has is listed as shadowed by that file."""
    from visionloop.workflows import WorkflowError, load_workflow
    from visionloop.workflows.library import list_workflows, workflow_folders

    try:
        entries = list_workflows(app.config)
    except OSError as exc:  # e.g. a folder without read permission
        raise VisionloopError(f"{exc.filename}: cannot list the workflows folder: {exc.strerror or exc}") from None
    listing = []
    for e in entries:
        where = {"name": e.name, "file": str(e.path), "source": e.source,
                 "shadowed_by": str(e.shadowed_by) if e.shadowed_by else None}
        try:
            wf = load_workflow(str(e.path), app.config, app.registry)
        except WorkflowError as exc:
            listing.append({**where, "valid": False, "error": str(exc.problems[0])})
            continue
        inputs = [{"name": n, "type": i.type, "required": i.is_required, "default": i.default,
                   "description": i.description} for n, i in wf.spec.inputs.items()]
        listing.append({**where, "valid": True, "description": wf.spec.description,
                        "inputs": inputs, "steps": [s.tool for s in wf.spec.steps]})
    if app.json:
        print(json.dumps(listing, ensure_ascii=False, default=str))
        return 0
    if not listing:
        folders = ", ".join(str(f.path) for f in workflow_folders(app.config))
        print(f"no workflows in {folders}", file=sys.stderr)
    for entry in listing:
        mark = f"[{entry['source']}]"
        if entry["shadowed_by"]:
            mark = f"[{entry['source']}, shadowed by {entry['shadowed_by']}]"
        if not entry["valid"]:
            print(f"{entry['name']}  (invalid: {entry['error']})  {mark}")
            continue
        print(f"{entry['name']}  {entry['description']}  {mark}")
        if entry["shadowed_by"]:
            continue  # `run NAME` never gets here; its inputs are the other file's business
        for inp in entry["inputs"]:
            need = "required" if inp["required"] else f"default {inp['default']!r}"
            print(f"    --input {inp['name']}=...  {inp['type']}, {need}  {inp['description']}")
    return 0
