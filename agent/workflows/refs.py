"""`${...}` references: look-ups only, substituted in one pass, never evaluated.

The grammar is deliberately tiny (no expressions, no attribute access, no filters):

    ${inputs.NAME}
    ${steps.ID.text}   ${steps.ID.image}   ${steps.ID.images}   ${steps.ID.data.KEY}

A string that is exactly one reference takes the referenced value with its type (an int stays
an int, `images` stays a list). Inside a longer string each reference becomes text. The
substitution is a single `re.sub` pass, so text a step produced (a caption that happens to
contain `${inputs.secret}` or `{{ 7*7 }}`) is inserted literally and never looked at again.
`$${` writes a literal `${`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

_TOKEN = re.compile(r"\$\$\{|\$\{([^}]*)\}")
_NAME = r"[A-Za-z_][A-Za-z0-9_-]*"
_INPUT = re.compile(rf"^inputs\.({_NAME})$")
_STEP = re.compile(rf"^steps\.({_NAME})\.(text|image|images|data\.({_NAME}))$")

GRAMMAR = "${inputs.NAME}, ${steps.ID.text}, ${steps.ID.image}, ${steps.ID.images} or ${steps.ID.data.KEY}"


class RefError(ValueError):
    """A reference that is malformed (at validation) or cannot be resolved (at run time)."""


@dataclass(frozen=True)
class Ref:
    kind: str  # "inputs" or "steps"
    name: str  # input name or step id
    field: str = ""  # text, image, images or data
    key: str = ""  # the KEY of data.KEY

    def __str__(self) -> str:
        if self.kind == "inputs":
            return f"${{inputs.{self.name}}}"
        tail = f"data.{self.key}" if self.field == "data" else self.field
        return f"${{steps.{self.name}.{tail}}}"


def parse_ref(body: str, written: str | None = None) -> Ref:
    """Parse the inside of one `${...}`; raise `RefError` for anything but a plain look-up.
    `written` is the reference as it appears in the file, for the message."""
    text = body.strip()
    shown = written or f"${{{body}}}"
    m = _INPUT.match(text)
    if m:
        return Ref("inputs", m.group(1))
    m = _STEP.match(text)
    if m:
        if m.group(3):
            return Ref("steps", m.group(1), "data", m.group(3))
        return Ref("steps", m.group(1), m.group(2))
    if text.startswith("{"):
        raise RefError(f"not a reference: '{shown}' (write ${{inputs.NAME}}, not ${{{{ inputs.NAME }}}})")
    raise RefError(f"not a reference: '{shown}' (references are look-ups only: {GRAMMAR})")


def find_refs(value: Any) -> tuple[list[Ref], list[str]]:
    """Every reference inside `value` (strings, lists and mappings, recursively) and the
    messages for malformed ones."""
    refs: list[Ref] = []
    problems: list[str] = []
    if isinstance(value, str):
        for m in _TOKEN.finditer(value):
            if m.group(0) == "$${":
                continue
            # `${{ x }}`: the token stops at the first `}`; show the second one too, as written
            end = m.end() + (m.group(1).lstrip().startswith("{") and value[m.end():m.end() + 1] == "}")
            try:
                refs.append(parse_ref(m.group(1), value[m.start():end]))
            except RefError as exc:
                problems.append(str(exc))
        if "${" in _TOKEN.sub("", value):
            problems.append(f"unclosed '${{' in {value!r} (write $${{ for a literal '${{')")
    elif isinstance(value, dict):
        for k, v in value.items():
            if "${" in str(k):  # keys are names, never substituted: say so rather than write it literally
                problems.append(f"{str(k)!r}: references are filled in values only, not in names (keys)")
            r, p = find_refs(v)
            refs += r
            problems += p
    elif isinstance(value, list):
        for v in value:
            r, p = find_refs(v)
            refs += r
            problems += p
    return refs, problems


def literal_part(text: str) -> str:
    """`text` with every reference left out (`$${` as the `${` it writes): the part that is
    there whatever the references hold, so at least this long after substitution."""
    return _TOKEN.sub(lambda m: "${" if m.group(0) == "$${" else "", text)


def whole_ref(value: Any) -> Ref | None:
    """The reference when `value` is exactly one `${...}` (so it keeps its type), else None."""
    if isinstance(value, str):
        m = _TOKEN.fullmatch(value.strip())
        if m and m.group(0) != "$${":
            try:
                return parse_ref(m.group(1))
            except RefError:
                return None
    return None


@dataclass
class StepValues:
    """What a finished step offers to later references."""

    text: str = ""
    images: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Scope:
    inputs: dict[str, Any] = field(default_factory=dict)
    steps: dict[str, StepValues] = field(default_factory=dict)

    def lookup(self, ref: Ref) -> Any:
        if ref.kind == "inputs":
            if ref.name not in self.inputs:
                raise RefError(f"{ref}: no input {ref.name!r}")
            return self.inputs[ref.name]
        step = self.steps.get(ref.name)
        if step is None:
            raise RefError(f"{ref}: step {ref.name!r} has not run")
        if ref.field == "text":
            return step.text
        if ref.field == "images":
            return list(step.images)
        if ref.field == "image":
            if not step.images:
                raise RefError(f"{ref}: step {ref.name!r} produced no image")
            return step.images[0]
        if ref.key not in step.data:
            raise RefError(f"{ref}: step {ref.name!r} has no data key {ref.key!r} "
                           f"(it has: {', '.join(sorted(step.data)) or 'none'})")
        return step.data[ref.key]


def as_text(value: Any) -> str:
    """How a referenced value reads inside a longer string."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ", ".join(as_text(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def resolve(value: Any, scope: Scope) -> Any:
    """Substitute every reference in `value` (one pass); raise `RefError` when one cannot be."""
    if isinstance(value, str):
        ref = whole_ref(value)
        if ref is not None:
            return scope.lookup(ref)

        def replace(m: re.Match) -> str:
            if m.group(0) == "$${":
                return "${"
            return as_text(scope.lookup(parse_ref(m.group(1))))

        return _TOKEN.sub(replace, value)
    if isinstance(value, dict):
        return {k: resolve(v, scope) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, scope) for v in value]
    return value
