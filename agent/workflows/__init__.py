"""YAML workflows: chains of tool calls with typed inputs, `${...}` look-ups, run manifests.

    from visionloop.workflows import load_workflow, run_workflow, WorkflowError

    wf = load_workflow("alt-text", config, registry)          # validated, or WorkflowError
    outcome = run_workflow(wf, {"image": "a.png"}, ctx, registry, Path("out"))

Modules: `schema` (the file format, pydantic), `refs` (the reference grammar), `validate`
(static checks with file:line) and `values` (what fits a tool argument, what a step returns),
`engine` (one run), `manifest` (the run folder and its records), `batch` (folders and globs),
`replay` (re-running a manifest), `plan` (run arguments and dry-run plans for the faces).
"""

from visionloop.workflows.engine import WorkflowOutcome, check_inputs, run_workflow
from visionloop.workflows.validate import Problem, Workflow, WorkflowError, check_text, find_workflow, load_workflow

__all__ = ["load_workflow", "run_workflow", "WorkflowError", "Workflow", "WorkflowOutcome", "Problem",
           "check_inputs", "check_text", "find_workflow"]
