"""What a server job does, as the CLI does it: `run_tool` for a tool call, `run_workflow` for a
workflow run, `replay` for a replay. Each builder returns `work(ctx)` for `Jobs.submit`, giving
(result JSON in the CLI's `--json` shape, error or None, the ids of the runs it left).
"""

from __future__ import annotations

from visionloop.server.files import Roots
from visionloop.server.jobs import tool_json
from visionloop.tools import Tool, run_tool


def tool_call(tool: Tool, args: dict, roots: Roots):
    def work(ctx):
        results = run_tool(tool, args, ctx)
        error = "; ".join(r.error for r in results if r.error) or None
        # the record is the call's history row (Jobs fills it in); without a history, its pictures
        runs = [f"image:{rel}" for r in results for rel in map(roots.relative, r.images) if rel]
        return tool_json(results), error, runs

    return work


def workflow_run(wf, values: dict, registry, roots: Roots):
    from visionloop.workflows import run_workflow

    def work(ctx):
        outcome = run_workflow(wf, values, ctx, registry, roots.out)
        rel = roots.relative(outcome.run_dir)
        return outcome.to_json(), None if outcome.ok else (outcome.error or "the run failed"), [f"run:{rel}"]

    return work


def manifest_replay(manifest, registry, roots: Roots):
    from visionloop.workflows.replay import replay

    def work(ctx):
        outcome = replay(manifest, ctx, registry, roots.out)
        rel = roots.relative(outcome.run_dir)
        error = None if outcome.status == "ok" else (outcome.error or "the replay failed")
        return outcome.to_json(), error, [f"run:{rel}"]

    return work
