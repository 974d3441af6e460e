"""Reading a command's `--json` output (JSON Lines: result lines, then one summary line), for
the tests. No pytest here; plain asserts check the frame of the contract on every read."""

from __future__ import annotations

import json


def parse(out: str) -> tuple[list[dict], dict]:
    """`(result lines, summary)` of `out`: every line one JSON object, the last `{"summary": ...}`
    and only the last."""
    objs = [json.loads(line) for line in out.splitlines()]
    assert objs and set(objs[-1]) == {"summary"}, out
    assert all(isinstance(o, dict) and "summary" not in o for o in objs[:-1]), out
    return objs[:-1], objs[-1]["summary"]


def results(out: str) -> list[dict]:
    return parse(out)[0]


def summary(out: str) -> dict:
    return parse(out)[1]


def one(out: str) -> dict:
    """The one result line of `out`."""
    found = results(out)
    assert len(found) == 1, out
    return found[0]


def watch_counts(out: str) -> dict:
    """What `watch --once --json` counted, by the names its plain line uses."""
    found = summary(out)
    assert found["command"] == "watch", out
    return {"processed": found["ok"], "failed": found["failed"], "skipped": found["skipped"],
            "unfinished": found["unfinished"]}
