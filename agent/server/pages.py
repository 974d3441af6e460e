"""The web pages: server-rendered (Jinja2) with a little plain JavaScript (`static/app.js`), no
build step, nothing fetched from the internet.

    /                 the gallery: runs, newest first, filters by tool and text
    /runs/{id}        one run: every step, its pictures and parameters; replay, use as input,
                      draw again with another seed
    /tools            every tool and workflow
    /tools/{name}     a form generated from the tool's declared inputs, with an image drop zone
                      and live progress

Pages send a strict Content-Security-Policy: scripts and styles from this server only.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

HERE = Path(__file__).parent
PAGE_SIZE = 48
CSP = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
#: inputs shown as a text area
LONG_TEXT = ("prompt", "question", "negative_prompt", "style")


def _settings_line(settings: dict) -> str:
    order = ("steps", "guidance", "size", "scheduler", "strength", "model")
    return " · ".join(f"{k} {settings[k]}" if k not in ("size", "model") else str(settings[k])
                      for k in order if settings.get(k) is not None)


def install(app) -> None:
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters["settings"] = _settings_line
    templates.env.filters["runurl"] = lambda run_id: "/runs/" + quote(run_id, safe="/:")
    templates.env.filters["fileurl"] = lambda rel: "/files/" + quote(rel, safe="/")
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    def page(request: Request, name: str, status: int = 200, **context):
        server = request.app.state.server
        tools = sorted(server.registry.tools.values(), key=lambda t: t.name)
        response = templates.TemplateResponse(request, name, {"nav_tools": [t.name for t in tools], **context},
                                              status_code=status)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def gallery(request: Request, tool: str | None = None, q: str | None = None, page_no: int = 1):
        server = request.app.state.server
        page_no = max(1, page_no)
        listing = server.runs.list(tool or None, q or None, PAGE_SIZE, (page_no - 1) * PAGE_SIZE)
        return page(request, "gallery.html", runs=listing["runs"], total=listing["total"], tool=tool or "",
                    q=q or "", page_no=page_no, pages=max(1, -(-listing["total"] // PAGE_SIZE)),
                    tools=sorted(set(server.runs.tools()) | set(server.registry.tools)))

    @app.get("/runs/{run_id:path}", response_class=HTMLResponse, include_in_schema=False)
    def run_page(request: Request, run_id: str):
        server = request.app.state.server
        detail = server.runs.detail(run_id)
        if detail is None:
            return page(request, "missing.html", 404, what=f"run {run_id}")
        image_tools = [(t.name, i.name) for t in sorted(server.registry.tools.values(), key=lambda t: t.name)
                       for i in t.inputs[:1] if i.type == "image"]
        return page(request, "run.html", run=detail, image_tools=image_tools)

    @app.get("/tools", response_class=HTMLResponse, include_in_schema=False)
    def tools_page(request: Request):
        from visionloop.workflows.library import list_workflows

        server = request.app.state.server
        tools = [t.describe() for t in sorted(server.registry.tools.values(), key=lambda t: t.name)]
        workflows = [e.name for e in list_workflows(server.config) if not e.shadowed_by]
        return page(request, "tools.html", tools=tools, workflows=workflows)

    @app.get("/tools/{name}", response_class=HTMLResponse, include_in_schema=False)
    def tool_page(request: Request, name: str):
        server = request.app.state.server
        tool = server.registry.tools.get(name)
        if tool is None:
            return page(request, "missing.html", 404, what=f"tool {name}")
        given = dict(request.query_params)
        fields = [{**i.describe(), "long": i.name in LONG_TEXT, "value": given.get(i.name, "")} for i in tool.inputs]
        return page(request, "tool.html", tool=tool.describe(), fields=fields)
