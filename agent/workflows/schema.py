"""The workflow file format as pydantic models: the single source of truth for validation and
for `workflows/schema.json` (regenerate with `python -m visionloop.workflows`).

Free text is typed `str` and every model forbids unknown fields, so a typo (`promt:`) is an
error with a "did you mean" rather than a silently ignored key. Tool arguments (`with:`) are
checked later against the registered tool's declared inputs, which this module cannot know.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import ConfigDict, Field

from visionloop.config import Strict
from visionloop.tools import INPUT_TYPES

#: Step ids, input and output names: short identifiers usable inside `${...}` references.
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]*$"
#: Sidecar file names: one plain name (no folders) ending in .txt or .json.
FILE_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*\.(txt|json)$"
#: The run folder's own records: a sidecar file may not take these names (in any case).
MANIFEST = "manifest.json"
OUTPUTS = "outputs.json"
RESERVED_FILES = (MANIFEST, OUTPUTS)

InputType = Literal[INPUT_TYPES]  # type: ignore[valid-type]


class InputSpec(Strict):
    """One value the user supplies (`--input NAME=VALUE`, or the watched file)."""

    type: InputType = Field("text", description="text, int, float, bool, image, choice, box or size")
    description: str = Field("", description="shown by `visionloop workflows`")
    default: Any = Field(None, description="used when the input is not given; omit to make the input required")
    required: bool | None = Field(None, description="default: true when there is no default")
    choices: list[str] = Field([], description="the allowed values of a choice input")
    min: float | None = None
    max: float | None = None

    @property
    def is_required(self) -> bool:
        return self.default is None if self.required is None else self.required


class StepSpec(Strict):
    """One tool call. `with` maps the tool's argument names to values or `${...}` references."""

    model_config = ConfigDict(populate_by_name=True)  # `with_=` in code, `with:` in files
    id: str = Field(pattern=NAME_PATTERN, description="referenced as ${steps.ID.text|image|images|data.KEY}")
    tool: str = Field(description="a registered tool, e.g. caption, read-text, draw, restyle")
    description: str = ""
    with_: dict[str, Any] = Field({}, alias="with", description="the tool's arguments")


class WorkflowSpec(Strict):
    """A workflow file."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True,
                              json_schema_extra={"$schema": "https://json-schema.org/draft/2020-12/schema",
                                                 "title": "visionloop workflow"})

    name: str = Field(description="a short name, used for run folders")
    description: str = ""
    inputs: dict[str, InputSpec] = {}
    steps: list[StepSpec] = Field(min_length=1)
    outputs: dict[str, Any] = Field({}, description="named results written to outputs.json; values may be references")
    files: dict[str, Any] = Field(
        {}, description="sidecar files written into the run folder: NAME.txt gets text, NAME.json gets JSON "
                        f"(not {' or '.join(RESERVED_FILES)}: the run's own records)")


def json_schema() -> dict:
    """The JSON Schema of a workflow file, as shipped in `workflows/schema.json`."""
    schema = WorkflowSpec.model_json_schema(by_alias=True)
    schema["properties"]["inputs"]["propertyNames"] = {"pattern": NAME_PATTERN}
    schema["properties"]["outputs"]["propertyNames"] = {"pattern": NAME_PATTERN}
    schema["properties"]["files"]["propertyNames"] = {"pattern": FILE_PATTERN, "not": {"enum": list(RESERVED_FILES)}}
    return schema


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
