"""`validate` and `workflows`: checking workflow files and listing the ones `run NAME` finds.

Both say the same of a file: `valid`, and its `problems` (`{"line", "path", "message", "text"}`),
the first of them in `error`. Registered by `visionloop.cli.workflows` with `run` and `replay`.
"""

from __future__ import annotations

import sys

from visionloop.cli.jsonlines import json_command
from visionloop.errors import VisionloopError


# --- validate ------------------------------------------------------------------------------

def problem_list(exc) -> list[dict]:
    """A `WorkflowError`'s problems as `validate --json` and `workflows --json` give them:
    `{"line", "path", "message", "text"}`, "path" always a string ("" for the file as a whole)."""
    return [{"line": getattr(p, "line", 0), "path": _loc(p.loc) if getattr(p, "loc", ()) else "",
             "message": getattr(p, "message", str(p)), "text": str(p)} for p in exc.problems]


def problems_error(problems: list[dict]) -> str | None:
    """The `error` of an entry with problems: the first one, and how many more there are."""
    if not problems:
        return None
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return problems[0]["text"] + more


@json_command("validate")
def cmd_validate(args, app, out) -> int:
    from visionloop.workflows import WorkflowError, load_workflow

    for name in args.files:
        try:
            wf = load_workflow(name, app.config, app.registry)
            entry = {"file": str(wf.source), "name": wf.name, "valid": True, "problems": []}
        except WorkflowError as exc:
            entry = {"file": name, "name": None, "valid": False, "problems": problem_list(exc)}
        out.result({**entry, "error": problems_error(entry["problems"])})
        if not app.json:
            if entry["valid"]:
                print(f"{entry['file']}: ok")
            for p in entry["problems"]:
                print(p["text"])
    return 1 if out.counts["failed"] else 0


def _loc(loc) -> str:
    from visionloop.yamlsource import format_loc

    return format_loc(loc)


# --- workflows -----------------------------------------------------------------------------

@json_command("workflows")
def cmd_workflows(args, app, out) -> int:
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
            problems = problem_list(exc)
            listing.append({**where, "valid": False, "description": None, "inputs": [], "steps": [],
                            "problems": problems, "error": problems_error(problems)})
            continue
        inputs = [{"name": n, "type": i.type, "required": i.is_required, "default": i.default,
                   "description": i.description} for n, i in wf.spec.inputs.items()]
        listing.append({**where, "valid": True, "description": wf.spec.description,
                        "inputs": inputs, "steps": [s.tool for s in wf.spec.steps], "problems": [], "error": None})
    for entry in listing:
        out.result(entry)
    if app.json:
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
