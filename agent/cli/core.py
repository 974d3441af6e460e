"""The core's own sub-commands: `tools` (what is registered) and `info` (what an image carries)."""

from __future__ import annotations

import sys

from visionloop.cli.jsonlines import json_command


def add_commands(sub, common) -> None:
    p = sub.add_parser("tools", help="list the registered tools and their inputs", parents=[common()])
    p.set_defaults(handler=cmd_tools)
    p = sub.add_parser("info", help="print the generation record an image carries", parents=[common()])
    p.add_argument("image", nargs="+", metavar="IMAGE")
    p.set_defaults(handler=cmd_info)


@json_command("tools", fields={"broken": []})
def cmd_tools(args, app, out) -> int:
    """The registered tools: a table (widths from what it holds), or under --json one line per
    tool (its `describe()`, `error` null); broken plugins are named in the summary's `broken`."""
    tools = sorted(app.registry.tools.values(), key=lambda t: t.name)
    broken = [{"plugin": name, "error": error} for name, error in app.registry.broken.items()]
    if app.json:
        for tool in tools:
            out.result({**tool.describe(), "error": None})
        return out.end(0, broken=broken)
    rows = [(tool, [(inp.name, _input_bits(inp), inp.help) for inp in tool.inputs]) for tool in tools]
    name_w = max((len(t.name) for t in tools), default=0)
    input_w = max((len(r[0]) for _, inputs in rows for r in inputs), default=0)
    bits_w = max((len(r[1]) for _, inputs in rows for r in inputs), default=0)
    for tool, inputs in rows:
        print(f"{tool.name:<{name_w}}  {tool.description}".rstrip())
        for name, bits, help_text in inputs:
            print(f"    {name:<{input_w}}  {bits:<{bits_w}}  {help_text}".rstrip())
    for b in broken:
        print(f"broken plugin {b['plugin']}: {b['error']}")
    return 0


def _input_bits(inp) -> str:
    """An input's type column: `image..., required`, `int, default 1`, `choice, short|long`."""
    bits = [inp.type + ("..." if inp.multiple else "")]
    if inp.required:
        bits.append("required")
    elif inp.default is not None:
        bits.append(f"default {inp.default}")
    if inp.choices:
        bits.append("|".join(inp.choices))
    return ", ".join(bits)


#: the keys of every `info --json` line, in order (null when the image has no such thing)
INFO_KEYS = ("file", "format", "width", "height", "parameters", "visionloop", "error")


@json_command("info")
def cmd_info(args, app, out) -> int:
    """Each image's record; a bad one is reported and the others are still shown; exit 1 when
    any failed. One image alone fails like any command in plain output. Under --json one line
    per image, keys `INFO_KEYS` (`width`/`height` integers), the failure in `error`."""
    from visionloop.cli.app import one_line
    from visionloop.errors import UsageError, VisionloopError
    from visionloop.images import read_metadata
    from visionloop.paths import user_path

    if any(not path.strip() for path in args.image):  # Path("") would be "." (the current folder)
        raise UsageError("IMAGE: expected a file path, got an empty string")
    for path in args.image:
        try:
            rec = read_metadata(user_path(path, "IMAGE"))
        except VisionloopError as exc:
            if len(args.image) == 1 and not app.json:  # --json: still its line and the summary
                raise
            out.result({**dict.fromkeys(INFO_KEYS), "file": path, "error": str(exc)})
            if not app.json:
                print(f"error: {one_line(exc)}", file=sys.stderr)
            continue
        if app.json:
            width, height = (int(n) for n in str(rec.pop("size")).split("x"))
            out.result({**dict.fromkeys(INFO_KEYS), **rec, "width": width, "height": height, "error": None})
            continue
        out.result(rec)
        # a file name or a foreign PNG's text may hold escape sequences: never sent raw to the terminal
        print(f"{one_line(rec['file'])}: {rec['format']} {rec['size']}")
        if "parameters" in rec:
            print("\n".join(one_line(line) for line in str(rec["parameters"]).split("\n")))
        if "visionloop" in rec:
            print(one_line(visionloop_summary(rec["visionloop"])))
        if "visionloop" not in rec and "parameters" not in rec:
            print("(no generation metadata)")
    return 1 if out.counts["failed"] else 0


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
