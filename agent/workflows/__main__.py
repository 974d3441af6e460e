"""`python -m agent.workflows [PATH]`: regenerate the JSON Schema for workflow files
(default `workflows/schema.json`); `tests/test_workflow_schema.py` fails when it is stale."""

import sys
from pathlib import Path

from agent.workflows.schema import schema_text

target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "workflows" / "schema.json"
target.write_text(schema_text(), encoding="utf-8")
print(target)
