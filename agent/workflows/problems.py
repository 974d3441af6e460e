"""How a workflow problem is reported: `Problem` (`FILE:LINE: path: message`), `WorkflowError`
(every problem, one a line), and the translation of what pydantic and the file's bytes say into
problems a user can act on (unknown fields with a "did you mean", names that break the naming
rule, text that is not UTF-8)."""

from __future__ import annotations

import codecs
from dataclasses import dataclass

from pydantic import BaseModel, ValidationError

from visionloop.errors import VisionloopError
from visionloop.workflows.schema import NAME_PATTERN, InputSpec, StepSpec, WorkflowSpec
from visionloop.yamlsource import YamlDoc, did_you_mean, format_loc


@dataclass(frozen=True)
class Problem:
    source: str
    line: int
    loc: tuple
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source  # 0: no line (e.g. file too large)
        return f"{where}: {format_loc(self.loc)}: {self.message}"


class WorkflowError(VisionloopError):
    """A workflow file or its inputs are wrong; the message lists every problem, one a line."""

    def __init__(self, problems: list[Problem] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def _model_fields(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


#: What a name that breaks `NAME_PATTERN` is used for, by the section it is in.
_NAMED = {"steps": "step id", "inputs": "input name", "outputs": "output name"}


def schema_problems(doc: YamlDoc, exc: ValidationError) -> list[Problem]:
    """pydantic errors with the line each path starts on, unknown keys with a suggestion."""
    out = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        if err["type"] == "extra_forbidden":
            parent = loc[:-1]
            model = StepSpec if parent[:1] == ("steps",) else InputSpec if parent[:1] == ("inputs",) else WorkflowSpec
            message = f"unknown field {loc[-1]!r}{did_you_mean(loc[-1], _model_fields(model))}"
            out.append(Problem(doc.source, doc.line(loc), parent, message))
            continue
        if loc[-1:] == ("[key]",):  # a name that is not text (`5:`): the checker's name rules say so
            continue
        if err["type"] == "string_pattern_mismatch" and err.get("ctx", {}).get("pattern") == NAME_PATTERN:
            what = _NAMED.get(str(loc[0]), "name")
            out.append(Problem(doc.source, doc.line(loc), loc, f"{what} {err['input']!r} must start with a letter "
                                                               "or _ and hold only letters, digits, _ or -"))
            continue
        message = err["msg"]
        if "input" in err and not isinstance(err["input"], (dict, list)):
            message += f" (got {err['input']!r})"
            if err["type"] == "string_type" and isinstance(err["input"], (bool, int, float)):
                message += "; quote the value to keep it as text"
        out.append(Problem(doc.source, doc.line(loc), loc, message))
    return out


def decode_workflow(raw: bytes, source: str) -> str:
    """The text of a workflow file's bytes; a `WorkflowError` naming the line of the first byte
    that is not UTF-8 (or the encoding a byte-order mark gives away) otherwise."""
    for bom, name in ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
                      (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16")):
        if raw.startswith(bom):
            raise WorkflowError([Problem(source, 1, (), f"the file is {name} text; save it as UTF-8")])
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise WorkflowError([Problem(source, line, (), f"not UTF-8 text (byte {raw[exc.start]:#04x} "
                                                       "cannot start or continue a character); save it as UTF-8")])
