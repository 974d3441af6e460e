"""A workflow run as the faces ask for it: the run arguments (`visionloop run` and the chat's
`/run` parse the same ones) and the plan a dry run shows (built and worded once for both)."""

from __future__ import annotations

import json
from pathlib import Path

from visionloop.errors import UsageError


def add_run_arguments(parser) -> None:
    """The arguments of `visionloop run`, shared with the chat's `/run`."""
    parser.add_argument("workflow", metavar="WORKFLOW", help="a workflow file, or a name in the workflows folder")
    parser.add_argument("-i", "--input", dest="inputs", action="append", default=[], metavar="NAME=VALUE",
                        help="a workflow input (repeat for several)")
    parser.add_argument("--dry-run", action="store_true", help="print the resolved plan; load and write nothing")


def parse_inputs(pairs: list[str], bad: str = "--input {pair!r}: expected NAME=VALUE",
                 twice: str = "--input {name!r} given twice") -> dict[str, str]:
    """NAME=VALUE words as a dict; `UsageError` (worded by `bad` and `twice`, so the chat can
    say it in its own syntax) for a word without a name or "=", or a name given twice. An empty
    or blank VALUE (`image=`, an unset shell variable) is refused too: as a path it would name
    the current folder."""
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise UsageError(bad.format(pair=pair))
        if name.strip() in out:
            raise UsageError(twice.format(name=name.strip()))
        if not value.strip():
            raise UsageError(f"input {name.strip()!r} has an empty value ({pair!r}): give a value, "
                             "or leave the input out to use its default")
        out[name.strip()] = value
    return out


def build_plan(wf, values: dict, config, registry, out_dir: Path, batch=None) -> dict:
    """What a run would do, with inputs substituted and later steps' values left as references."""
    from visionloop.workflows.refs import Scope, resolve

    class PlanScope(Scope):
        def lookup(self, ref):
            return super().lookup(ref) if ref.kind == "inputs" else str(ref)

    scope = PlanScope(inputs=values)
    steps = [{"id": s.id, "tool": s.tool, "plugin": registry.tools[s.tool].plugin,
              "args": resolve(s.with_, scope)} for s in wf.spec.steps]
    return {"workflow": wf.name, "file": str(wf.path), "sha256": wf.sha256, "status": "planned", "inputs": values,
            "batch": {"input": batch[0], "files": [str(f) for f in batch[1]]} if batch else None,
            "steps": steps, "outputs": resolve(wf.spec.outputs, scope), "files": list(wf.spec.files),
            "models": plan_models(steps, config), "device": config.device, "dtype": config.dtype, "out": str(out_dir)}


#: the models each built-in tool loads; `step_models` refines read-text (by its engine) and restyle
#: (LLaVA describes the image only when no prompt is given)
TOOL_MODELS = {"see": ("vision",), "caption": ("vision",), "read-text": ("ocr",), "draw": ("diffusion",),
               "edit": ("diffusion",), "restyle": ("vision", "diffusion")}


def step_models(tool: str, args: dict, config) -> tuple[str, ...]:
    """The kinds of model (vision, diffusion, ocr) one step loads; () for a tool not known here."""
    if tool == "read-text":
        engine = args.get("engine") or config.ocr.engine
        if engine == "llava":
            return ("vision",)
        return ("vision", "ocr") if _is_reference(engine) else ("ocr",)
    if tool == "restyle" and args.get("prompt"):
        return ("diffusion",)
    return TOOL_MODELS.get(tool, ())


def _is_reference(value) -> bool:
    return isinstance(value, str) and "${" in value


def plan_models(steps: list[dict], config) -> dict:
    """The models the steps use (only those): vision and diffusion by model and revision, OCR by
    the engines read-text steps name (`auto`: the config's default)."""
    profile = config.active
    kinds = {kind for step in steps for kind in step_models(step["tool"], step["args"], config)}
    models = {}
    for kind in ("vision", "diffusion"):
        if kind in kinds:
            spec = getattr(profile, kind)
            models[kind] = {"model": spec.model, "revision": spec.revision}
    if "ocr" in kinds:
        engines = {str(s["args"].get("engine") or config.ocr.engine) for s in steps if s["tool"] == "read-text"}
        models["ocr"] = {"engines": sorted(e for e in engines if e != "llava"), "lang": config.ocr.lang}
    return models


def format_plan(plan: dict) -> str:
    """A plan from `build_plan` as the lines `run --dry-run` (and the chat's `/run --dry-run`) print."""
    lines = [f"workflow {plan['workflow']} ({plan['file']})"]
    if plan["batch"]:
        lines.append(f"  once per image for input {plan['batch']['input']!r}: {len(plan['batch']['files'])} files")
    lines += [f"  input {name} = {value!r}" for name, value in plan["inputs"].items()]
    lines += [f"  step {step['id']}: {step['tool']} {json.dumps(step['args'], ensure_ascii=False)}"
              for step in plan["steps"]]
    lines += [f"  output {name} = {value!r}" for name, value in plan["outputs"].items()]
    m = plan["models"]
    named = [f"{kind} {m[kind]['model']}" for kind in ("vision", "diffusion") if kind in m]
    if "ocr" in m:
        named.append(f"ocr {', '.join(m['ocr']['engines'])}")
    lines.append(f"  models: {', '.join(named) or 'none'} (device {plan['device']}, dtype {plan['dtype']})")
    lines.append(f"  writes a new run folder under {plan['out']}")
    return "\n".join(lines)
