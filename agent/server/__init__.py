"""`visionloop serve`: the HTTP API, the OpenAI-shaped routes and the web gallery, a thin face
over the same `Loop`, registry, workflow engine and manifests as every other face.

Needs the `serve` extra (FastAPI, uvicorn, Jinja2, python-multipart); nothing here is imported
until `serve` runs. Modules, one concept each:

- `app`: `Server` (what the routes share) and `create_app`;
- `security`: loopback by default, the token, Host/Origin checks, the body limit;
- `jobs` (+ `calls`, `progress`): jobs over the loop, a bounded queue, cancel, live progress;
- `events`: the event bus and server-sent events;
- `files` + `arguments`: which paths may be read, uploads through the safe image loader;
- `runs` (+ `replays`): past runs from manifests, the history and PNG metadata, and replaying them;
- `api`, `openai_api`, `pages` (+ `templates/`, `static/`): the routes; `responses`: JSON and errors.
"""
