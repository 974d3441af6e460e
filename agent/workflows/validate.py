"""Load a workflow file and check everything that can be checked without loading a model.

Every problem is collected (not just the first) and reported as `FILE:LINE: path: message`:
YAML syntax, duplicate keys, tags and aliases (from `visionloop.yamlsource`), unknown fields with a
"did you mean", unknown tools, arguments a tool does not take or of the wrong type or range,
missing required arguments, references to unknown inputs, unknown or later steps, or to what
a step's tool declares it never returns, and sidecar file names that are not plain or that
would overwrite the run's own records.

Whether a value fits an argument (a literal, one whole reference, text with references inside)
is decided by `visionloop.workflows.values`, with the tool's own rules (`visionloop.values.coerce_value`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from visionloop.errors import InputError
from visionloop.tools import Tool
from visionloop.workflows.problems import Problem, WorkflowError, decode_workflow, schema_problems
from visionloop.workflows.refs import Ref, find_refs, whole_ref
from visionloop.workflows.schema import FILE_PATTERN, NAME_PATTERN, RESERVED_FILES, InputSpec, WorkflowSpec
from visionloop.workflows.values import (input_as_tool_input, literal_problem, ref_type_problem, result_problem,
                                    template_problem)
from visionloop.yamlsource import YamlDoc, YamlProblem, did_you_mean, parse_yaml, read_limited
from visionloop.paths import user_path
from visionloop.workflows.library import bundled_folder, find_in_folders, workflow_folders


@dataclass
class Workflow:
    """A validated workflow: its spec, where it came from and the hash of its exact text."""

    spec: WorkflowSpec
    path: Path | None
    text: str
    sha256: str
    source: str = field(default="")

    @property
    def name(self) -> str:
        return self.spec.name

    def image_inputs(self) -> list[str]:
        return [n for n, i in self.spec.inputs.items() if i.type == "image"]


class _Checker:
    def __init__(self, doc: YamlDoc, registry, config=None):
        self.doc = doc
        self.registry = registry
        self.config = config
        self.input_specs: dict[str, InputSpec] = {}  # declared inputs that are valid, for reference types
        self.step_tools: dict[str, Tool] = {}  # step id -> its tool (first of duplicates), for result references
        self.problems: list[Problem] = []

    def add(self, loc: tuple, message: str) -> None:
        self.problems.append(Problem(self.doc.source, self.doc.line(loc), loc, message))

    def refs(self, loc: tuple, value: Any, inputs: set[str], earlier: list[str], later: set[str],
             this: str | None = None) -> None:
        refs, bad = find_refs(value)
        for message in bad:
            self.add(loc, message)
        for ref in refs:
            self.ref(loc, ref, inputs, earlier, later, this)

    def ref(self, loc, ref: Ref, inputs, earlier, later, this) -> None:
        if ref.kind == "inputs":
            if ref.name not in inputs:
                known = ", ".join(sorted(inputs)) or "none declared"
                self.add(loc, f"{ref}: unknown input {ref.name!r}{did_you_mean(ref.name, inputs)} (inputs: {known})")
        elif ref.name == this and this not in earlier:  # a duplicated id is reported on its own
            self.add(loc, f"{ref}: a step cannot refer to itself")
        elif ref.name in later:
            self.add(loc, f"{ref}: step {ref.name!r} runs later; a step can only use earlier steps")
        elif ref.name not in earlier:
            shown = list(dict.fromkeys(earlier))  # a duplicated id (reported on its own) is listed once
            self.add(loc, f"{ref}: unknown step {ref.name!r}{did_you_mean(ref.name, shown)}"
                          f" (steps: {', '.join(shown) or 'none before this one'})")
        elif ref.name in self.step_tools:
            why = result_problem(ref, self.step_tools[ref.name])
            if why:
                self.add(loc, why)

    def run(self, data: dict) -> None:
        inputs = data.get("inputs") if isinstance(data.get("inputs"), dict) else {}
        for name, spec in inputs.items():
            if not re.match(NAME_PATTERN, str(name)):
                self.add(("inputs", name), f"input name {name!r} must be letters, digits, _ or - (used in ${{inputs.NAME}})")
            if not isinstance(spec, dict):
                continue
            try:
                ispec = InputSpec.model_validate(spec)
            except ValidationError:
                continue  # reported by the schema pass
            self.input_specs[str(name)] = ispec
            if ispec.type == "choice" and not ispec.choices:
                self.add(("inputs", name, "type"), "a choice input needs a list of choices")
            if ispec.default is not None:
                why = literal_problem(input_as_tool_input(str(name), ispec), ispec.default)
                if why:
                    self.add(("inputs", name, "default"), why)
        steps = data.get("steps") if isinstance(data.get("steps"), list) else []
        ids = [s.get("id") if isinstance(s, dict) else None for s in steps]
        seen: dict[str, int] = {}
        for i, sid in enumerate(ids):
            if isinstance(sid, str) and sid in seen:
                self.add(("steps", i, "id"), f"duplicate step id {sid!r} (also steps[{seen[sid]}])")
            elif isinstance(sid, str):
                seen[sid] = i
                tool = self.registry.tools.get(steps[i].get("tool")) if isinstance(steps[i].get("tool"), str) else None
                if tool is not None:
                    self.step_tools[sid] = tool
        for i, step in enumerate(steps):
            if isinstance(step, dict):
                earlier = [s for s in ids[:i] if isinstance(s, str)]
                later = {s for s in ids[i + 1:] if isinstance(s, str)}
                self.step(i, step, set(inputs), earlier, later)
        all_steps = [s for s in ids if isinstance(s, str)]
        for section in ("outputs", "files"):
            value = data.get(section)
            if not isinstance(value, dict):
                continue
            for name, v in value.items():
                if section == "outputs" and not re.match(NAME_PATTERN, str(name)):
                    self.add((section, name), f"output name {name!r} must be letters, digits, _ or -")
                if section == "files" and not re.match(FILE_PATTERN, str(name)):
                    self.add((section, name), f"file name {name!r} must be a plain name ending in .txt or .json, "
                                              "with no folders (files are written inside the run folder)")
                elif section == "files" and str(name).lower() in RESERVED_FILES:
                    self.add((section, name), f"file name {name!r} is reserved: the run folder's own "
                                              f"{str(name).lower()} would be overwritten (pick another name)")
                self.refs((section, name), v, set(inputs), all_steps, set())

    def step(self, i: int, step: dict, inputs: set[str], earlier: list[str], later: set[str]) -> None:
        args = step.get("with") if isinstance(step.get("with"), dict) else {}
        this = step.get("id") if isinstance(step.get("id"), str) else None
        for name, value in args.items():
            self.refs(("steps", i, "with", name), value, inputs, earlier, later, this)
        tool_name = step.get("tool")
        if not isinstance(tool_name, str):
            return
        tool: Tool | None = self.registry.tools.get(tool_name)
        if tool is None:
            names = ", ".join(sorted(self.registry.tools))
            broken = "".join(f"; broken plugin {n}: {e}" for n, e in self.registry.broken.items())
            self.add(("steps", i, "tool"), f"unknown tool {tool_name!r}{did_you_mean(tool_name, self.registry.tools)}"
                                           f" (tools: {names}){broken}")
            return
        for name, value in args.items():
            inp = tool.input(str(name))
            loc = ("steps", i, "with", name)
            if inp is None:
                takes = ", ".join(i.name for i in tool.inputs)
                self.add(loc, f"{tool.name} takes no argument {name!r}"
                              f"{did_you_mean(name, [i.name for i in tool.inputs])} (it takes: {takes})")
                continue
            ref = whole_ref(value)
            if ref is not None:
                if ref.field == "images" and not inp.multiple:
                    self.add(loc, f"{ref} is a list of images but {tool.name}'s {name!r} takes one (use .image)")
                else:
                    why = ref_type_problem(ref, inp, tool, self.input_specs, self.config)
                    if why:
                        self.add(loc, why)
                continue
            if value is None:
                continue
            if find_refs(value)[0]:  # text with references inside: only its literal part is known
                why = template_problem(inp, value) if isinstance(value, str) else None
            else:
                why = literal_problem(inp, value, self.config)
            if why:
                self.add(loc, why)
        for inp in tool.inputs:
            if inp.required and args.get(inp.name) is None:
                self.add(("steps", i, "with"), f"{tool.name} needs argument {inp.name!r}")



def check_text(text: str, source: str, registry, config=None) -> tuple[WorkflowSpec | None, list[Problem]]:
    """Validate workflow `text`; return the spec (None when invalid) and every problem. With
    `config`, literal sizes for the diffusion tools are checked against its active profile."""
    try:
        doc = parse_yaml(text, source)
    except YamlProblem as exc:
        return None, [Problem(source, exc.line, exc.path, exc.message)]
    if not isinstance(doc.data, dict):
        kind = "empty" if doc.data is None else f"a {type(doc.data).__name__}"
        return None, [Problem(source, 1, (), f"a workflow must be a mapping with name and steps, got {kind}")]
    problems: list[Problem] = []
    spec = None
    try:
        spec = WorkflowSpec.model_validate(doc.data)
    except ValidationError as exc:
        problems += schema_problems(doc, exc)
    checker = _Checker(doc, registry, config)
    checker.run(doc.data)
    problems += checker.problems
    problems.sort(key=lambda p: p.line)
    return (spec if not problems else None), problems


#: The example workflows that ship with visionloop (None when missing); `visionloop.workflows.library`.
BUNDLED = bundled_folder()


def find_workflow(path_or_name: str, config) -> Path:
    """A path as given, else NAME, NAME.yaml or NAME.yml in the first of the folders that
    `visionloop.workflows.library.workflow_folders` lists (the config's, the user's, the bundled
    examples); a `WorkflowError` (one line) when it is none of these or cannot be a path at all."""
    if not path_or_name.strip():
        raise WorkflowError("the workflow name is empty (give a workflow file, or the name of one)")
    try:
        return _find(path_or_name, config)
    except InputError as exc:  # a `~user` that names no home folder
        raise WorkflowError(str(exc)) from None
    except OSError as exc:  # e.g. a name longer than the file system allows
        raise WorkflowError(f"{path_or_name[:80]}: {exc.strerror or exc}") from None


def _find(path_or_name: str, config) -> Path:
    given = user_path(path_or_name, "workflow")
    if given.is_file():
        return given
    folders = workflow_folders(config)
    if "/" not in path_or_name and "\\" not in path_or_name:
        found = find_in_folders(path_or_name, folders)
        if found is not None:
            return found
    searched = ", ".join(str(f.path) for f in folders)
    raise WorkflowError(f"{path_or_name}: workflow not found (not a file, and not a workflow in {searched})")


def load_workflow(path_or_name: str, config, registry) -> Workflow:
    """Find, read and validate a workflow; raise `WorkflowError` listing every problem."""
    path = find_workflow(str(path_or_name), config)
    try:
        raw = read_limited(path)  # at most MAX_BYTES + 1, checked before decoding; no FIFO, no device
    except YamlProblem as exc:
        raise WorkflowError([Problem(str(path), 0, (), exc.message)]) from None
    except OSError as exc:
        raise WorkflowError(f"{path}: cannot read workflow: {exc}") from None
    text = decode_workflow(raw, str(path))
    spec, problems = check_text(text, str(path), registry, config)
    if problems:
        raise WorkflowError(problems)
    return Workflow(spec=spec, path=path.resolve(), text=text, sha256=hashlib.sha256(raw).hexdigest(),
                    source=str(path))
