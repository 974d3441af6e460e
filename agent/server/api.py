"""The JSON API under `/api`, and `/files/...`.

    GET    /api/tools                      the registry, as `visionloop tools --json`
    POST   /api/tools/{name}[?wait=true]   run a tool: {"job": ID} at once (202), or its result
    GET    /api/workflows                  the workflows `run NAME` finds
    POST   /api/workflows/{name}/runs      run one: {"inputs": {...}} or a form with uploads
    GET    /api/jobs, /api/jobs/{id}       jobs and their state; DELETE cancels
    GET    /api/events                     server-sent events (?job=ID, ?types=a,b, ?limit=N)
    GET    /api/runs, /api/runs/{id}       past runs in the output folder (?tool=, ?q=, ?limit=, ?offset=)
    POST   /api/runs/{id}/replay           replay a run (?seed=new: a single picture with another seed)
    GET    /files/{path}                   a file of the output folder
"""

from __future__ import annotations

import mimetypes

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, StreamingResponse

from visionloop.server.arguments import BadRequest, read_body, resolve_images
from visionloop.server.files import Refused
from visionloop.server.responses import JSON

router = APIRouter()
MAX_LIMIT = 500
#: what /files serves as itself; anything else is a download (never a page on this origin)
INLINE = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp",
          ".gif": "image/gif", ".bmp": "image/bmp", ".json": "application/json", ".txt": "text/plain; charset=utf-8"}


def _server(request: Request):
    return request.app.state.server


async def _answer(server, job, wait: bool):
    if not wait:
        return JSON({"job": job.id}, status_code=202, headers={"Location": f"/api/jobs/{job.id}"})
    job = await server.jobs.wait(job)
    if job.result is not None:
        return JSON(job.result)
    status = 409 if job.status == "cancelled" else 422
    return JSON({"error": job.error, "job": job.id, "status": job.status}, status_code=status)


# --- tools ------------------------------------------------------------------------------------

@router.get("/api/tools")
def list_tools(request: Request):
    return [t.describe() for t in sorted(_server(request).registry.tools.values(), key=lambda t: t.name)]


@router.post("/api/tools/{name}", status_code=202)
async def call_tool(name: str, request: Request, wait: bool = False):
    """Run the tool with the arguments of a JSON object, or of a form whose image inputs may be
    uploads. Image names are files inside the output folder or an input root."""
    from visionloop.values import check_args

    server = _server(request)
    tool = server.registry.tools.get(name)
    if tool is None:
        raise Refused(f"no tool {name!r} (GET /api/tools lists them)", 404)
    values, files = await read_body(request)
    images = {i.name: i.multiple for i in tool.inputs if i.type == "image"}
    args = await resolve_images(values, files, images, server.roots, server.config.images)
    check_args(tool, args)  # InputError: 400 now, before the job is queued
    return await _answer(server, server.submit_tool(tool, args), wait)


# --- workflows --------------------------------------------------------------------------------

@router.get("/api/workflows")
def list_workflows_route(request: Request):
    from visionloop.errors import VisionloopError
    from visionloop.workflows import load_workflow
    from visionloop.workflows.library import list_workflows

    server = _server(request)
    listing = []
    for entry in list_workflows(server.config):
        if entry.shadowed_by:
            continue
        item = {"name": entry.name, "source": entry.source}
        try:
            wf = load_workflow(str(entry.path), server.config, server.registry)
            item.update(valid=True, description=wf.spec.description,
                        inputs={k: {"type": v.type, "default": v.default} for k, v in wf.spec.inputs.items()})
        except VisionloopError as exc:
            item.update(valid=False, error=str(exc).splitlines()[0])
        listing.append(item)
    return listing


def _find_workflow(server, name: str):
    from visionloop.workflows import load_workflow
    from visionloop.workflows.library import list_workflows

    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise Refused(f"workflow {name!r}: give a workflow's name, not a path", 400)
    entry = next((e for e in list_workflows(server.config) if e.name == name and not e.shadowed_by), None)
    if entry is None:
        raise Refused(f"no workflow {name!r} (GET /api/workflows lists them)", 404)
    return load_workflow(str(entry.path), server.config, server.registry)


@router.post("/api/workflows/{name}/runs", status_code=202)
async def run_workflow_route(name: str, request: Request, wait: bool = False):
    from visionloop.server.calls import workflow_run
    from visionloop.workflows import check_inputs

    server = _server(request)
    wf = _find_workflow(server, name)
    values, files = await read_body(request)
    if set(values) == {"inputs"} and isinstance(values["inputs"], dict):
        values = values["inputs"]
    images = {k: False for k, v in wf.spec.inputs.items() if v.type == "image"}
    given = await resolve_images(values, files, images, server.roots, server.config.images)
    checked = check_inputs(wf, given)  # WorkflowError: 400 with every problem
    job = server.jobs.submit("workflow", wf.name, server.shown(given),
                             workflow_run(wf, checked, server.registry, server.roots))
    return await _answer(server, job, wait)


# --- jobs and events --------------------------------------------------------------------------

@router.get("/api/jobs")
def list_jobs(request: Request):
    jobs = _server(request).jobs
    return {"waiting": jobs.waiting(), "jobs": [j.brief() for j in jobs.list()]}


def _job(request: Request, job_id: str):
    job = _server(request).jobs.get(job_id)
    if job is None:
        raise Refused(f"no job {job_id!r}", 404)
    return job


@router.get("/api/jobs/{job_id}")
def get_job(job_id: str, request: Request):
    return JSON(_job(request, job_id).to_json())


@router.delete("/api/jobs/{job_id}", status_code=202)
def cancel_job(job_id: str, request: Request):
    job = _job(request, job_id)
    if job.finished is not None:
        return JSON({"error": f"job {job_id} has ended ({job.status})", "status": job.status}, status_code=409)
    _server(request).jobs.cancel(job)
    return {"job": job.id, "status": job.status, "cancelling": True}


@router.get("/api/events")
async def events(request: Request, job: str | None = None, types: str | None = None, limit: int | None = None):
    from visionloop.server.events import stream

    kinds = {t.strip() for t in types.split(",") if t.strip()} if types else None
    return StreamingResponse(stream(_server(request).bus, request, job, kinds, limit), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


# --- runs and files ---------------------------------------------------------------------------

@router.get("/api/runs")
def list_runs(request: Request, tool: str | None = None, q: str | None = None, limit: int = 50, offset: int = 0):
    if not 1 <= limit <= MAX_LIMIT or offset < 0:
        raise BadRequest(f"limit must be 1..{MAX_LIMIT} and offset at least 0")
    return JSON(_server(request).runs.list(tool, q, limit, offset))


@router.post("/api/runs/{run_id:path}/replay", status_code=202)
async def replay_run(run_id: str, request: Request, seed: str = "same", wait: bool = False):
    from visionloop.server.calls import manifest_replay
    from visionloop.server.replays import replay_call
    from visionloop.values import check_args

    if seed not in ("same", "new"):
        raise BadRequest("seed must be 'same' or 'new'")
    server = _server(request)
    kind, what = replay_call(server.runs, run_id, seed == "new", server.registry)
    if kind == "manifest":
        job = server.jobs.submit("replay", run_id, {"run": run_id},
                                 manifest_replay(what, server.registry, server.roots))
    else:
        tool_name, args = what
        tool = server.registry.tool(tool_name)
        check_args(tool, args)
        job = server.submit_tool(tool, args)
    return await _answer(server, job, wait)


@router.get("/api/runs/{run_id:path}")
def get_run(run_id: str, request: Request):
    detail = _server(request).runs.detail(run_id)
    if detail is None:
        raise Refused(f"no run {run_id!r} in the output folder", 404)
    return JSON(detail)


@router.get("/files/{path:path}")
def get_file(path: str, request: Request):
    found = _server(request).roots.output_file(path)
    kind = INLINE.get(found.suffix.lower())
    headers = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "default-src 'none'; sandbox",
               "Cache-Control": "no-cache"}
    if kind is None:
        return FileResponse(found, media_type=mimetypes.guess_type(found.name)[0] or "application/octet-stream",
                            headers=headers, filename=found.name, content_disposition_type="attachment")
    return FileResponse(found, media_type=kind, headers=headers)
