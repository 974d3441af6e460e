"""The server's runs, whatever made them (its own jobs, the CLI, workflows, files from before the
history), replay, the OpenAI-shaped routes through the `openai` client library, and the pages."""

from __future__ import annotations

import base64
import io
import subprocess
import sys
import textwrap

import pytest
import yaml

from serve_helpers import live_server

pytestmark = [pytest.mark.needs("fastapi", "uvicorn", "jinja2", "python_multipart", "httpx"),
              pytest.mark.usefixtures("one_torch_thread")]

LOCAL = "http://127.0.0.1"
WORKFLOW = {"name": "draw-and-describe", "description": "draw, then caption the drawing",
            "inputs": {"prompt": {"type": "text", "default": "a lighthouse"}},
            "steps": [{"id": "draw", "tool": "draw", "with": {"prompt": "${inputs.prompt}", "seed": 5}},
                      {"id": "describe", "tool": "caption", "with": {"image": "${steps.draw.image}"}}],
            "outputs": {"picture": "${steps.draw.image}", "caption": "${steps.describe.text}"}}


@pytest.fixture
def setup(loop, tiny_config, registry, tmp_path):
    """(TestClient, Server, config) with a workflows folder holding draw-and-describe."""
    from fastapi.testclient import TestClient

    from visionloop.server.app import build_server, create_app

    folder = tmp_path / "workflows"
    folder.mkdir()
    (folder / "draw-and-describe.yaml").write_text(yaml.safe_dump(WORKFLOW, sort_keys=False))
    config = tiny_config.model_copy(update={"workflows": str(folder)})
    made = []

    def make(**changes):
        server = build_server(config.model_copy(update=changes), registry, tmp_path / "out", loop=loop)
        client = TestClient(create_app(server), base_url=LOCAL)
        made.append((client, server))
        return client, server, config

    yield make
    for client, server in made:
        client.close()
        server.close()


def pixels(path):
    from visionloop.images import pixels_sha256

    return pixels_sha256(path)


def test_a_workflow_run_is_listed_with_its_steps_and_replays_identically(setup):
    client, server, _ = setup()
    assert "draw-and-describe" in [w["name"] for w in client.get("/api/workflows").json()]
    r = client.post("/api/workflows/draw-and-describe/runs?wait=true", json={"inputs": {"prompt": "a red boat"}})
    assert r.status_code == 200, r.text
    outcome = r.json()
    assert outcome["status"] == "ok" and outcome["outputs"]["picture"]
    [run] = client.get("/api/runs", params={"tool": "caption"}).json()["runs"]
    assert run["kind"] == "workflow" and run["name"] == "draw-and-describe" and run["seed"] == 5
    assert run["prompt"] == "a red boat" and run["tools"] == ["draw", "caption"]
    detail = client.get(f"/api/runs/{run['id']}").json()
    assert [s["id"] for s in detail["steps"]] == ["draw", "describe"] and detail["steps"][0]["images"]
    assert client.get(f"/files/{detail['manifest']}").json()["status"] == "ok"
    # no step is listed a second time as a single call
    assert client.get("/api/runs").json()["total"] == 1
    replayed = client.post(f"/api/runs/{run['id']}/replay?wait=true")
    assert replayed.status_code == 200, replayed.text
    assert replayed.json()["identical"] is True and replayed.json()["status"] == "ok"
    assert client.get("/api/runs").json()["total"] == 2
    assert client.post(f"/api/runs/{run['id']}/replay?seed=new").status_code == 400


def test_workflow_mistakes_are_answered_at_once(setup):
    client, _, _ = setup()
    assert client.post("/api/workflows/nosuch/runs", json={}).status_code == 404
    r = client.post("/api/workflows/draw-and-describe/runs", json={"inputs": {"colour": "red"}})
    assert r.status_code == 400 and "colour" in r.json()["error"] and r.json()["problems"]


def test_replay_a_call_with_its_seed_and_again_with_another(setup):
    client, server, _ = setup()
    first = client.post("/api/tools/draw?wait=true", json={"prompt": "a kite"}).json()
    [run] = client.get("/api/runs").json()["runs"]
    same = client.post(f"/api/runs/{run['id']}/replay?wait=true").json()
    assert same["data"]["seed"] == first["data"]["seed"]
    assert pixels(same["images"][0]) == pixels(first["images"][0])
    other = client.post(f"/api/runs/{run['id']}/replay?seed=new&wait=true").json()
    assert other["data"]["prompt"] == "a kite" and other["data"]["seed"] != first["data"]["seed"]
    assert client.get("/api/runs").json()["total"] == 3
    assert client.post("/api/runs/call:99999/replay").status_code == 404


def test_runs_made_by_the_cli_appear_too(setup, cli, tmp_path):
    client, server, config = setup()
    out = str(server.roots.out)
    assert cli("--out", out, "draw", "a castle", "--seed", "11").code == 0
    wf = tmp_path / "workflows" / "draw-and-describe.yaml"
    assert cli("--out", out, "run", str(wf), "--input", "prompt=a bridge").code == 0
    runs = client.get("/api/runs").json()["runs"]
    assert {(r["kind"], r["name"], r["seed"]) for r in runs} == {("tool", "draw", 11), ("workflow", "draw-and-describe", 5)}
    call = next(r for r in runs if r["kind"] == "tool")
    assert call["source"] == "history" and call["face"] is None


def test_without_the_history_pictures_list_from_their_png_record(setup, loop, monkeypatch):
    client, server, _ = setup(history=False)
    monkeypatch.setattr(loop.ctx, "config", server.config)  # the jobs' context: `history: false`
    made = client.post("/api/tools/draw?wait=true", json={"prompt": "a moon", "seed": 21}).json()
    job = server.jobs.list()[0]
    rel = server.roots.relative(made["images"][0])
    assert job.runs == [f"image:{rel}"]
    [run] = client.get("/api/runs").json()["runs"]
    assert run == {**run, "id": f"image:{rel}", "source": "png", "seed": 21, "prompt": "a moon"}
    detail = client.get(f"/api/runs/{run['id']}").json()
    assert "Seed: 21" in detail["parameters"] and detail["replay"]
    again = client.post(f"/api/runs/{run['id']}/replay?wait=true").json()
    assert pixels(again["images"][0]) == pixels(made["images"][0])
    from visionloop import history

    assert history.rows() == []


def test_pages_show_the_gallery_a_run_and_a_tool_form(setup):
    client, server, _ = setup()
    client.post("/api/tools/draw?wait=true", json={"prompt": "a <b>bold</b> owl", "seed": 8})
    page = client.get("/")
    assert page.status_code == 200 and "seed 8" in page.text and "a &lt;b&gt;bold&lt;/b&gt; owl" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    [run] = client.get("/api/runs").json()["runs"]
    run_page = client.get(f"/runs/{run['id']}").text
    assert f"/files/{run['images'][0]}" in run_page and 'id="replay"' in run_page and 'id="again"' in run_page
    form = client.get("/tools/draw").text
    assert 'name="prompt"' in form and 'name="seed"' in form and 'data-tool="draw"' in form
    assert 'type="file"' in client.get("/tools/restyle?image=x.png").text
    assert client.get("/tools/nosuch").status_code == 404 and client.get("/runs/call:424242").status_code == 404
    assert client.get("/tools").status_code == 200
    assert client.get("/static/app.js").status_code == 200 and client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    assert {"/api/tools/{name}", "/api/runs", "/v1/images/generations", "/v1/chat/completions"} <= set(schema["paths"])


@pytest.mark.needs("openai")
def test_an_openai_client_draws_and_chats_through_v1(setup, example_image):
    import openai
    from PIL import Image

    client, server, _ = setup()
    with live_server(server) as url:
        oa = openai.OpenAI(base_url=f"{url}/v1", api_key="not-needed", max_retries=0)
        assert "visionloop" in [m.id for m in oa.models.list().data]
        made = oa.images.generate(prompt="a lighthouse at dusk", n=2, size="64x64", response_format="b64_json")
        pictures = [Image.open(io.BytesIO(base64.b64decode(d.b64_json))) for d in made.data]
        assert [p.size for p in pictures] == [(64, 64), (64, 64)]
        linked = oa.images.generate(prompt="a lighthouse", size="64x64", response_format="url")
        import httpx

        assert httpx.get(linked.data[0].url).content[:4] == b"\x89PNG"
        data_url = "data:image/png;base64," + base64.b64encode(example_image.read_bytes()).decode()
        messages = [{"role": "user", "content": [{"type": "text", "text": "What is in this picture?"},
                                                 {"type": "image_url", "image_url": {"url": data_url}}]}]
        answer = oa.chat.completions.create(model="visionloop", messages=messages, max_tokens=8)
        assert isinstance(answer.choices[0].message.content, str) and answer.usage.completion_tokens >= 1
        pieces = [c.choices[0].delta.content or "" for c in
                  oa.chat.completions.create(model="visionloop", messages=messages, max_tokens=8, stream=True)]
        assert "".join(pieces)
        with pytest.raises(openai.BadRequestError, match="data: URL"):
            oa.chat.completions.create(model="visionloop", messages=[{"role": "user", "content": [
                {"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "http://x.example/a.png"}}]}])
    assert client.get("/api/runs", params={"tool": "see"}).json()["total"] == 2


def test_help_and_tools_never_import_the_server():
    script = textwrap.dedent("""
        import contextlib, io, sys
        from visionloop.cli.app import main
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                main(["--help"])
            except SystemExit:
                pass
            main(["tools"])
            try:
                main(["serve", "--help"])
            except SystemExit:
                pass
        print(sorted(m for m in ("fastapi", "uvicorn", "starlette", "jinja2", "visionloop.server.app") if m in sys.modules))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
