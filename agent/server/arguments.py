"""A call's arguments from an HTTP request: a JSON object, or a form (multipart with image
uploads, or URL-encoded).

Image arguments are either uploads (kept by `files.save_upload` after the safe loader read
them) or names inside the output folder or an input root (`Roots.input_file`); every other
value is passed on as given, and the tool's own `check_args` coerces and checks it, exactly as
for the CLI's strings and a workflow's YAML scalars. An empty form field means "not given".
"""

from __future__ import annotations

import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from visionloop.server.files import Refused, Roots, save_upload
from visionloop.server.security import BodyTooLarge

MAX_FILES = 8
MAX_FIELDS = 200
MAX_FIELD_BYTES = 256 * 1024


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


async def read_body(request) -> tuple[dict[str, Any], list[tuple[str, UploadFile]]]:
    """The request's values and its uploads, (name, file) in order."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if kind in ("multipart/form-data", "application/x-www-form-urlencoded"):
            form = await request.form(max_files=MAX_FILES, max_fields=MAX_FIELDS, max_part_size=MAX_FIELD_BYTES)
            values: dict[str, Any] = {}
            files = []
            for key, value in form.multi_items():
                if isinstance(value, UploadFile):
                    if value.filename or value.size:
                        files.append((key, value))
                elif key == "args":  # a JSON object of arguments beside the files
                    values.update(_json_object(value, "args"))
                elif value.strip() != "":
                    values[key] = [*_as_list(values[key]), value] if key in values else value
            return values, files
        raw = await request.body()
    except BodyTooLarge:
        raise
    except Exception as exc:  # noqa: BLE001 - the multipart parser's own errors: a bad request
        raise BadRequest(f"cannot read the form: {exc}") from None
    if not raw.strip():
        return {}, []
    return _json_object(raw, "body"), []


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _json_object(raw, what: str) -> dict:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest(f"{what}: not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRequest(f"{what}: expected a JSON object of arguments, got {type(data).__name__}")
    return data


async def resolve_images(values: dict, files, image_inputs: dict[str, bool], roots: Roots, limits) -> dict:
    """`values` with every image argument made an absolute path the server allows.
    `image_inputs`: {name: takes several}. `Refused` for a path or an upload that is not allowed."""
    out = dict(values)
    for name, value in values.items():
        if name in image_inputs and value is not None:
            names = value if isinstance(value, list) else [value]
            if not all(isinstance(v, str) for v in names):
                raise BadRequest(f"{name}: expected a file name (or a list of them)")
            paths = [roots.input_file(v, name) for v in names]
            out[name] = paths if isinstance(value, list) else paths[0]
    uploaded: dict[str, list[str]] = {}
    for name, upload in files:
        if name not in image_inputs:
            raise BadRequest(f"upload {upload.filename!r}: {name!r} is not an image input "
                             f"(image inputs: {', '.join(image_inputs) or 'none'})")
        if not image_inputs[name] and (name in uploaded or values.get(name) is not None):
            raise BadRequest(f"{name}: takes one image, got several")
        path = await run_in_threadpool(save_upload, upload.file, upload.filename or name, roots,
                                       limits.max_pixels, limits.max_file_mb)
        uploaded.setdefault(name, []).append(path)
    for name, paths in uploaded.items():
        if image_inputs[name]:
            out[name] = [*(_as_list(out[name]) if out.get(name) is not None else []), *paths]
        else:
            out[name] = paths[0]
    return out


__all__ = ["BadRequest", "Refused", "read_body", "resolve_images"]
