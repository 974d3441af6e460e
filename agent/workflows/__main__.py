"""`python -m visionloop.workflows [PATH]`: write the JSON Schema of workflow files (default: in a
source checkout `workflows/schema.json`, which `tests/test_workflow_files.py` checks is up to
date; in an installed copy, standard output)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from visionloop.errors import VisionloopError
from visionloop.images import atomic_write_bytes
from visionloop.paths import user_path
from visionloop.workflows.schema import schema_text

_CHECKOUT = Path(__file__).resolve().parents[2]
# In a source checkout the schema lives beside the example workflows; an installed copy has no
# such folder (it would be site-packages), so there the default is to print it.
DEFAULT = str(_CHECKOUT / "workflows" / "schema.json") if (_CHECKOUT / "pyproject.toml").is_file() else "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m visionloop.workflows",
        description="Write the JSON Schema of visionloop workflow files (for editors and CI). "
                    "It is generated from the workflow models, so it always matches what `visionloop validate` "
                    "accepts.")
    parser.add_argument("path", nargs="?", default=DEFAULT, metavar="PATH",
                        help=f"where to write it; '-' prints it (default: {DEFAULT})")
    args = parser.parse_args(argv)
    if args.path == "-":
        sys.stdout.write(schema_text())
        return 0
    try:
        if not args.path.strip():
            raise VisionloopError("the output path is empty (give a file name, or '-' to print the schema)")
        target = user_path(args.path, "schema")
        if target.is_dir():
            raise VisionloopError(f"{target}: is a folder; give a file name, e.g. {target / 'schema.json'}")
        atomic_write_bytes(target, schema_text().encode("utf-8"))  # never a half-written schema
    except VisionloopError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"{parser.prog}: error: {args.path}: cannot write the schema: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
