"""The core's own sub-commands: `tools` (what is registered) and `info` (what an image carries)."""

from __future__ import annotations

import json
import sys


def add_commands(sub, common) -> None:
    p = sub.add_parser("tools", help="list the registered tools and their inputs", parents=[common()])
    p.set_defaults(handler=cmd_tools)
    p = sub.add_parser("info", help="print the generation record an image carries", parents=[common()])
    p.add_argument("image", nargs="+", metavar="IMAGE")
    p.set_defaults(handler=cmd_info)


def cmd_tools(args, app) -> int:
    tools = sorted(app.registry.tools.values(), key=lambda t: t.name)
    if app.json:
        print(json.dumps([t.describe() for t in tools], ensure_ascii=False, default=str))
        return 0
    for tool in tools:
        print(f"{tool.name}  {tool.description}")
        for inp in tool.inputs:
            bits = [inp.type + ("..." if inp.multiple else "")]
            if inp.required:
                bits.append("required")
            elif inp.default is not None:
                bits.append(f"default {inp.default}")
            if inp.choices:
                bits.append("|".join(inp.choices))
            print(f"    {inp.name:<16} {', '.join(bits):<28} {inp.help}")
    for name, error in app.registry.broken.items():
        print(f"broken plugin {name}: {error}")
    return 0


def cmd_info(args, app) -> int:
    """Each image's record; a bad one is reported (`{"file", "error"}` under --json) and the
    others are still shown; exit 1 when any failed. One image alone fails like any command
    (under --json, with its `{"file", "error"}` record on stdout, as a tool's result would)."""
    from visionloop.cli.app import one_line
    from visionloop.errors import UsageError, VisionloopError
    from visionloop.images import read_metadata
    from visionloop.paths import user_path

    if any(not path.strip() for path in args.image):  # Path("") would be "." (the current folder)
        raise UsageError("IMAGE: expected a file path, got an empty string")
    records, failed = [], 0
    for path in args.image:
        try:
            records.append(read_metadata(user_path(path, "IMAGE")))
        except VisionloopError as exc:
            if len(args.image) == 1 and not app.json:  # --json: still one JSON document
                raise
            failed += 1
            records.append({"file": path, "error": str(exc)})
            print(f"error: {one_line(exc)}", file=sys.stderr)
    if app.json:
        print(json.dumps(records[0] if len(records) == 1 else records, ensure_ascii=False, default=str))
        return 1 if failed else 0
    for rec in records:
        if "error" in rec:
            continue
        # a file name or a foreign PNG's text may hold escape sequences: never sent raw to the terminal
        print(f"{one_line(rec['file'])}: {rec['format']} {rec['size']}")
        if "parameters" in rec:
            print("\n".join(one_line(line) for line in str(rec["parameters"]).split("\n")))
        if "visionloop" in rec:
            print(one_line(visionloop_summary(rec["visionloop"])))
        if "visionloop" not in rec and "parameters" not in rec:
            print("(no generation metadata)")
    return 1 if failed else 0


#: what the plain `info` shows of the visionloop record (--json shows all of it)
SUMMARY_KEYS = ("tool", "model", "seed", "size", "scheduler", "workflow", "run", "step")


def visionloop_summary(record) -> str:
    """One line from the `visionloop` chunk: tool, model, seed, size, scheduler, and the
    workflow run that made the image when the record names one."""
    if not isinstance(record, dict):
        return "visionloop: (unreadable record)"
    values = dict(record)
    if values.get("width") and values.get("height"):
        values["size"] = f"{values['width']}x{values['height']}"
    parts = []
    for key in SUMMARY_KEYS:
        value = values.get(key)
        if isinstance(value, dict):  # e.g. a workflow given as {"name": ..., "file": ...}
            value = value.get("name") or value.get("id") or value.get("file")
        if value not in (None, ""):
            parts.append(f"{key} {value}")
    return "visionloop: " + (", ".join(parts) or "(empty record)")
