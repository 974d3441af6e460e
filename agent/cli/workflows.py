"""Workflow sub-commands: `validate`, `run`, `replay` and `workflows` (the first and the last
are in `visionloop.cli.workflow_files`).

Argument parsing and printing only; the work is in `visionloop.workflows`. A run goes through the
loop like any tool call, so the models load once, also across the items of a batch. Under
`--json` a run prints one line per item as it ends, the same for one input and for a folder
(`BatchItem.to_json()`), then its summary (`visionloop.cli.jsonlines`).
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from pathlib import Path

from visionloop.cli.batch_options import (
    RAY_FLAGS,
    add_batch_arguments,
    batch_engine,
    print_batch,
)
from visionloop.cli.jsonlines import json_command
from visionloop.cli.workflow_files import cmd_validate, cmd_workflows
from visionloop.errors import UsageError
from visionloop.paths import user_path
from visionloop.workflows.plan import (
    add_run_arguments,
    build_plan,
    format_plan,
    parse_inputs,
)


def add_commands(sub, common) -> None:
    p = sub.add_parser("validate", parents=[common()], help="check workflow files without loading any model",
                       description="Check workflow files (YAML, fields, tools, arguments, references) "
                                   "without loading any model. Exit 0 when all are valid, 1 otherwise.")
    p.add_argument("files", nargs="+", metavar="FILE", help="workflow file, or the name of one in the workflows folder")
    p.set_defaults(handler=cmd_validate)

    p = sub.add_parser("run", parents=[common()], help="run a workflow (once, or per image of a folder or glob)",
                       description="Run a workflow. An image input given a folder or a glob runs it once per image.")
    add_run_arguments(p)
    add_batch_arguments(p)
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
    if out is not None and re.match(r"^[A-Za-z][A-Za-z0-9+.-]+://", str(out)):
        raise UsageError(f"--out {out}: a URL is not written directly; mount the bucket or share at a path "
                         "and give that (see docs/scaling.md)")
    return user_path(out or app.config.output, "--out")


def _note(app, text: str) -> None:
    if not app.json and not getattr(app.args, "quiet", False):
        print(text, file=sys.stderr)


# --- run -----------------------------------------------------------------------------------

#: what a run's (and a replay's) summary counts: its items by status
RUN_COUNTS = ("ok", "failed", "interrupted", "skipped", "not_run")


def _print_outcome(outcome, app) -> None:
    """A single run, plain: its steps (unless a terminal saw them live), the failure, the
    outputs (of a failed run only those that have a value) and the run folder."""
    if app.loop.ctx.report is None:  # no live step lines (a pipe): say them now
        for step in outcome.steps:
            mark = "ok" if step["status"] == "ok" else "FAILED"
            seconds = f" {step['seconds']:.2f}s" if step.get("seconds") is not None else ""
            _note(app, f"  {mark:<6} {step['id']} ({step['tool']}){seconds}")
    if outcome.error:
        where = f" at step {outcome.failed_step}" if outcome.failed_step else ""
        print(f"error: workflow {outcome.workflow} failed{where}: {outcome.error}", file=sys.stderr)
    for name, value in outcome.outputs.items():
        if outcome.ok or value not in ("", None, [], {}):
            print(f"{name}: {value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)}")
    print(f"run folder: {outcome.run_dir}")


def _input_file(wf, values: dict) -> str | None:
    """The input file of a single run, for its `file`: the value of its one image input."""
    images = [values.get(n) for n in wf.image_inputs()]
    return str(images[0]) if len(images) == 1 and images[0] not in (None, "") else None


@json_command("run", counts=RUN_COUNTS, fields={"workflow": None, "status": "failed"})
def cmd_run(args, app, out) -> int:
    from visionloop.loop import wait
    from visionloop.workflows import check_inputs, load_workflow, run_workflow
    from visionloop.workflows.batch import (
        BatchItem,
        RunInterrupted,
        batch_input,
        run_batch,
    )
    from visionloop.workflows.resume import finished_runs

    out.fields["workflow"] = args.workflow  # the name asked for, until the file says its own
    wf = load_workflow(args.workflow, app.config, app.registry)
    out.fields["workflow"] = wf.name
    given = parse_inputs(args.inputs)
    out_dir = _out_dir(args, app)
    engine = batch_engine(args, app.config)
    notes: list[str] = []
    batch = batch_input(wf, given, notes)
    for line in notes:  # e.g. subfolders a folder input leaves out
        _note(app, line)
    # Every input is checked (for a batch: with its first file) before any model loads.
    values = check_inputs(wf, {**given, batch[0]: str(batch[1][0])} if batch else given,
                          hint="--input {name}=VALUE")
    if args.dry_run:
        plan = build_plan(wf, {**values, batch[0]: str(user_path(given[batch[0]]))} if batch else values,
                          app.config, app.registry, out_dir, batch)
        if not app.json:
            print(format_plan(plan))
        out.result({**plan, "error": None})
        return out.end(0, workflow=wf.name, status="planned")
    from visionloop.images import ensure_output_dir

    if batch is not None and engine == "ray":
        from visionloop.workflows.ray_engine import import_ray

        import_ray()  # not installed: one line saying how, before anything is written
    ensure_output_dir(out_dir)  # once, up front: a bad --out is one error, not one failed item per file
    loop = app.loop  # made, not started: the Ray engine never submits to it
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

    def item_done(item) -> None:  # each item as it is settled: its line at once
        where = f" at step {item.failed_step}" if item.failed_step else ""
        said = (f"workflow {wf.name} failed{where}: {item.error}" if batch is None
                else item.error if str(item.file) in str(item.error) else f"{item.file}: {item.error}")
        out.result(item.to_json(), count=item.status, say=said if item.status == "failed" else False)

    if batch is None:
        if getattr(args, "engine", None) == "ray":
            _note(app, "note: --engine ray runs batches (a folder or glob); a single run runs here")
        file = _input_file(wf, values)
        try:
            outcome = run_one(values)
        except RunInterrupted as exc:
            item_done(BatchItem.interrupted(wf.name, file, exc.run_dir))
            if not app.json and exc.run_dir:
                print(f"run folder: {exc.run_dir}")
            out.end(130, workflow=wf.name, status="interrupted")
            raise
        if app.json:
            item_done(BatchItem.of(outcome, file))
        else:
            _print_outcome(outcome, app)
        code = 0 if outcome.ok else 1
        return out.end(code, workflow=wf.name, status=outcome.status)
    name, files = batch
    done = {} if getattr(args, "rerun", False) else finished_runs(
        wf, {str(f): {**values, name: str(f.resolve())} for f in files}, out_dir, app.config)
    on_item = item_done if app.json else None
    if engine == "ray":
        from visionloop.cli.progress import wanted
        from visionloop.workflows.ray_engine import run_batch_ray, settings

        ray = settings(app.config, **{key: getattr(args, key, None) for key in RAY_FLAGS})
        others = {**given, **{n: values[n] for n in wf.image_inputs() if n in given and n != name}}
        result = run_batch_ray(wf, others, name, files, app.config, out_dir, ray, progress=wanted(args, app.json),
                               on_item=on_item, done=done, verbose=bool(getattr(args, "verbose", 0)))
    else:
        result = run_batch(wf, given, name, files, run_one, progress=loop.ctx.progress, on_item=on_item, done=done)
    code = 130 if result.interrupted else 0 if result.status == "ok" else 1
    if not app.json:
        print_batch(result)
    out.end(code, workflow=wf.name, status=result.status)
    if result.interrupted:
        print("interrupted", file=sys.stderr)
    return code


# --- replay --------------------------------------------------------------------------------

@json_command("replay", fields={"workflow": None, "status": "failed", "identical": False})
def cmd_replay(args, app, out) -> int:
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
    forced = {}  # kind -> the dtype each model ran in (dtype: auto may choose otherwise elsewhere)
    quantize = None  # how LLaVA was quantized (int8 by default on a CPU, never on a GPU)
    if app._loop is None:  # a one-shot command: its loop is made with the recorded config
        from visionloop.models.device import recorded_dtypes

        app.config, warnings = replay_config(data, str(where), app.config, flags)
        forced = {} if flags.get("dtype") else recorded_dtypes(data)
        from visionloop.models.llava_speed import recorded_quantize

        quantize = None if flags.get("dtype") else recorded_quantize(data)
        for line in warnings:
            print(line, file=sys.stderr)
    loop = app.loop

    def run(ctx):
        ctx.models.forced_dtypes.update(forced)
        if quantize:
            ctx.models.forced_quantize = quantize
        return replay(args.manifest, ctx, app.registry, out_dir)

    result = wait(loop, loop.submit(run))
    code = 0 if result.identical and result.status == "ok" else 1
    if app.json:
        workflow = (data.get("workflow") or {}).get("name")
        out.result(_replay_line(result, workflow), count="ok" if code == 0 else "failed")
        return out.end(code, workflow=workflow, status=result.status, identical=result.identical)
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
    return code


def _replay_line(result, workflow: str | None) -> dict:
    """A replay's line: a run's (workflow, file, status, outputs, steps, manifest, error,
    failed_step), with what it was compared with (`replay_of`, `identical`, `differences`)."""
    try:
        outputs = json.loads(Path(result.manifest).read_text(encoding="utf-8")).get("outputs") or {}
    except (OSError, ValueError, TypeError, AttributeError):
        outputs = {}
    error = result.error
    if error is None and not result.identical:
        error = "not identical: " + "; ".join(result.differences)
    return {"workflow": workflow, "file": None, "status": result.status, "outputs": outputs, "steps": result.steps,
            "manifest": str(result.manifest), "error": error, "failed_step": result.failed_step,
            "replay_of": str(result.original), "identical": result.identical, "differences": result.differences}
