"""What replaying a run means: a workflow run's manifest goes to `replay` again; a single call
(a history row) runs the same tool with the same arguments and its recorded seed (or a new
seed: "draw again with another seed"); a drawing known only by its PNG record runs `draw` with
the arguments the record holds. Every recorded image path must lie in the output folder or an
input root, else the replay is refused.
"""

from __future__ import annotations

import json

from visionloop import history
from visionloop.server.files import Refused
from visionloop.server.runs import MANIFEST, RunIndex

#: the arguments of a `draw` call, from the record its picture carries
IMAGE_ARGS = ("prompt", "negative_prompt", "steps", "guidance", "seed", "width", "height")


def image_args(record: dict) -> dict:
    args = {k: record[k] for k in IMAGE_ARGS if record.get(k) not in (None, "")}
    if record.get("scheduler_name"):
        args["scheduler"] = record["scheduler_name"]
    return args


def replay_call(index: RunIndex, run_id: str, new_seed: bool, registry) -> tuple[str, object]:
    """What replaying `run_id` means: ("manifest", path) or ("call", (tool name, args)).
    `Refused` when it cannot be replayed here."""
    detail = index.detail(run_id)
    if detail is None:
        raise Refused(f"run {run_id!r} not found", 404)
    kind, _, key = run_id.partition(":")
    if kind == "run":
        if new_seed:
            raise Refused("a workflow run replays as recorded; another seed is for single pictures", 400)
        path = index.roots.output_file(f"{key}/{MANIFEST}")
        data = json.loads(path.read_bytes())
        for name, entry in (data.get("inputs") or {}).items():
            if isinstance(entry, dict) and entry.get("type") == "image" and entry.get("value"):
                if not index.roots.inside(entry["value"]):
                    raise Refused(f"input {name!r} lies outside the output folder and the input roots")
        return "manifest", path
    if kind == "call":
        row = history.get(int(key))
        tool_name, args, seed = row["tool"], dict(row["args"]), row["seed"]
    elif detail.get("replay"):
        record = read_record(index, key)
        tool_name, args, seed = "draw", image_args(record), record.get("seed")
    else:
        raise Refused("this picture does not record everything its call took (its input image); "
                      "only drawings replay from their PNG record", 409)
    tool = registry.tools.get(tool_name)
    if tool is None:
        raise Refused(f"tool {tool_name!r} is not installed", 409)
    for inp in tool.inputs:
        values = args.get(inp.name)
        if inp.type == "image" and values:
            for value in values if isinstance(values, list) else [values]:
                if not index.roots.inside(value):
                    raise Refused(f"{inp.name}: {value} lies outside the output folder and the input roots")
    if tool.input("seed") is not None:
        args.pop("seed", None)
        if not new_seed and seed is not None:
            args["seed"] = seed
    return "call", (tool_name, args)


def read_record(index: RunIndex, key: str) -> dict:
    from visionloop.images import read_metadata

    return read_metadata(index.roots.output_file(key))["visionloop"]
