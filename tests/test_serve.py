"""`visionloop serve`'s API on the tiny profile, through the ASGI test client: every endpoint,
jobs and cancel, a full queue, the token off loopback, paths that try to leave their folders,
bad uploads, and the same records whatever made the run."""

from __future__ import annotations

import io
import json
import threading

import pytest

from serve_helpers import ServeFakes, blocked, wait_until

pytestmark = [pytest.mark.needs("fastapi", "uvicorn", "jinja2", "python_multipart", "httpx"),
              pytest.mark.usefixtures("one_torch_thread")]

LOCAL = "http://127.0.0.1"


@pytest.fixture(scope="module")
def fakes_registry():
    from visionloop.plugins import load_registry

    return load_registry(extra=[ServeFakes])


@pytest.fixture
def make_client(loop, tiny_config, fakes_registry, tmp_path):
    """make_client(**build_server options) -> (TestClient, Server) over the session's loop."""
    from fastapi.testclient import TestClient

    from visionloop.server.app import build_server, create_app

    made = []

    def make(config=None, base_url=LOCAL, **options):
        server = build_server(config or tiny_config, fakes_registry, options.pop("out", tmp_path / "out"), loop=loop,
                              **options)
        client = TestClient(create_app(server), base_url=base_url)
        made.append((client, server))
        return client, server

    yield make
    for client, server in made:
        client.close()
        server.close()


@pytest.fixture
def api(make_client):
    return make_client()


def draw(client, **args):
    r = client.post("/api/tools/draw?wait=true", json={"prompt": "a lighthouse", **args})
    assert r.status_code == 200, r.text
    return r.json()


def job_state(client, job_id, status=("done", "failed", "cancelled")):
    return wait_until(lambda: (j := client.get(f"/api/jobs/{job_id}").json())["status"] in status and j, 60,
                      f"job {job_id} to reach {status}")


# --- tools, jobs, records ---------------------------------------------------------------------

def test_tools_is_the_registry_as_tools_json(api, fakes_registry):
    client, _ = api
    tools = client.get("/api/tools").json()
    assert tools == [t.describe() for t in sorted(fakes_registry.tools.values(), key=lambda t: t.name)]
    assert {"draw", "see", "caption", "wait"} <= {t["name"] for t in tools}


def test_draw_waits_gives_the_cli_json_and_leaves_a_record_with_its_seed(api):
    client, server = api
    result = draw(client, seed=7)
    assert set(result) == {"tool", "text", "images", "data", "error"}
    assert result["error"] is None and result["data"]["seed"] == 7
    [image] = result["images"]
    rel = server.roots.relative(image)
    assert client.get(f"/files/{rel}").content[:8] == b"\x89PNG\r\n\x1a\n"
    listing = client.get("/api/runs").json()
    [run] = [r for r in listing["runs"] if rel in r["images"]]
    assert run["id"].startswith("call:") and run["seed"] == 7 and run["prompt"] == "a lighthouse"
    assert run["settings"]["steps"] == 4 and run["settings"]["size"] == "64x64" and run["face"] == "server"
    detail = client.get(f"/api/runs/{run['id']}").json()
    assert detail["steps"][0]["args"]["seed"] == 7 and detail["replay"] and detail["again"]
    assert client.get("/api/runs", params={"tool": "caption"}).json()["total"] == 0
    assert client.get("/api/runs", params={"q": "LIGHTHOUSE"}).json()["total"] == 1
    assert client.get("/api/runs", params={"q": "zebra"}).json()["total"] == 0


def test_a_job_answers_at_once_and_reports_its_state_and_progress(api):
    client, _ = api
    r = client.post("/api/tools/draw", json={"prompt": "a boat", "seed": 3, "steps": 3})
    assert r.status_code == 202 and set(r.json()) == {"job"}
    job = job_state(client, r.json()["job"])
    assert job["status"] == "done" and job["kind"] == "tool" and job["name"] == "draw"
    assert job["result"]["data"]["seed"] == 3 and job["runs"][0].startswith("call:")
    assert job["progress"]["total"] == 4 and job["progress"]["fraction"] == 1.0  # 1 image x (3 steps + 1)
    assert any(j["id"] == job["id"] for j in client.get("/api/jobs").json()["jobs"])
    assert client.get("/api/jobs/nope").status_code == 404


def test_bad_arguments_are_refused_before_queueing(api):
    client, server = api
    assert client.post("/api/tools/nosuch", json={}).status_code == 404
    r = client.post("/api/tools/draw", json={"prompt": "x", "steps": "many"})
    assert r.status_code == 400 and "steps" in r.json()["error"]
    assert client.post("/api/tools/draw", json=["not", "an", "object"]).status_code == 400
    assert client.post("/api/tools/draw", content=b"{oops", headers={"content-type": "application/json"}).status_code == 400
    assert server.jobs.list() == []


def test_cancel_a_queued_job_and_a_running_one(api, loop):
    client, server = api
    with blocked(loop):
        queued = client.post("/api/tools/wait", json={"seconds": 1}).json()["job"]
        assert client.get(f"/api/jobs/{queued}").json()["status"] == "queued"
        assert client.delete(f"/api/jobs/{queued}").status_code == 202
        assert job_state(client, queued)["status"] == "cancelled"
    running = client.post("/api/tools/wait", json={"seconds": 30}).json()["job"]
    job_state(client, running, ("running",))
    assert client.delete(f"/api/jobs/{running}").status_code == 202
    job = job_state(client, running)
    assert job["status"] == "cancelled" and job["progress"]["checkpoint"] >= 1
    assert client.delete(f"/api/jobs/{running}").status_code == 409  # over already


def test_a_full_queue_answers_429(make_client, loop):
    client, server = make_client(max_queue=2)
    with blocked(loop):
        jobs = [client.post("/api/tools/wait", json={"seconds": 0}) for _ in range(2)]
        assert [r.status_code for r in jobs] == [202, 202]
        full = client.post("/api/tools/wait", json={"seconds": 0})
        assert full.status_code == 429 and "queue is full" in full.json()["error"] and full.headers["retry-after"]
        assert client.post("/v1/images/generations", json={"prompt": "x"}).status_code == 429
        for r in jobs:
            client.delete(f"/api/jobs/{r.json()['job']}")
    assert server.jobs.waiting() == 0


def test_events_stream_the_queue_progress_and_the_result(api):
    client, server = api
    got = {}

    def listen():
        got["body"] = client.get("/api/events", params={"types": "queued,started,done", "limit": 3}).text

    reader = threading.Thread(target=listen)
    reader.start()
    wait_until(lambda: server.bus.subscribers == 1, 10, "the event stream to subscribe")
    job = client.post("/api/tools/draw", json={"prompt": "a tree", "steps": 2}).json()["job"]
    reader.join(60)
    events = [json.loads(line[5:]) for line in got["body"].splitlines() if line.startswith("data:")]
    assert [e["type"] for e in events] == ["queued", "started", "done"]
    assert all(e["job"] == job for e in events) and events[-1]["status"] == "done"
    assert events[-1]["runs"] and events[-1]["result"]["data"]["steps"] == 2


# --- safety -------------------------------------------------------------------------------------

def test_a_non_loopback_address_needs_a_token_and_serve_refuses_to_start_without_one(cli, monkeypatch):
    from visionloop.errors import UsageError
    from visionloop.server import listen
    from visionloop.server.security import check_bind, is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("127.8.0.2")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4") and not is_loopback("example.org")
    with pytest.raises(UsageError, match="needs a token"):
        check_bind("0.0.0.0", None)
    check_bind("0.0.0.0", "x" * 20)  # with a token it may

    def no_bind(*a, **k):
        raise AssertionError("serve bound a socket without a token")

    monkeypatch.setattr(listen, "bind", no_bind)
    r = cli("serve", "--host", "0.0.0.0", "--port", "0")
    assert r.code == 2 and "needs a token" in r.err and "--token-env" in r.err
    monkeypatch.delenv("VL_TOKEN", raising=False)
    r = cli("serve", "--host", "0.0.0.0", "--token-env", "VL_TOKEN")
    assert r.code == 2 and "VL_TOKEN" in r.err and "not set" in r.err


def test_with_a_token_every_request_carries_it(make_client):
    token = "s3cret-token-for-tests"
    client, _ = make_client(token=token, base_url="http://192.0.2.10:8188")
    assert client.get("/api/tools").status_code == 401
    assert client.get("/api/tools", headers={"Authorization": "Bearer wrong-token-123456"}).status_code == 401
    assert client.get("/api/tools", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert client.get("/files/x.png").status_code == 401 and client.get("/").status_code == 401
    r = client.get(f"/?token={token}", follow_redirects=False)  # a browser: the token once, then a cookie
    assert r.status_code == 303 and r.headers["location"] == "/" and "HttpOnly" in r.headers["set-cookie"]
    assert client.get("/").status_code == 200


def test_without_a_token_foreign_hosts_and_origins_are_refused(api):
    client, _ = api
    assert client.get("/api/tools", headers={"Host": "evil.example"}).status_code == 403  # DNS rebinding
    r = client.post("/api/tools/draw", json={"prompt": "x"}, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403 and "refused" in r.json()["error"]
    assert "access-control-allow-origin" not in client.get("/api/tools", headers={"Origin": "http://a.example"}).headers


def test_paths_outside_the_folders_are_refused(api, tmp_path, example_image):
    client, server = api
    secret = tmp_path / "secret.png"
    secret.write_bytes(example_image.read_bytes())
    out = server.roots.out
    (out / "link.png").symlink_to(secret)
    (out / "linkdir").symlink_to(tmp_path)
    for name in ("../secret.png", "..%2Fsecret.png", "%2e%2e/secret.png", "link.png", "linkdir/secret.png",
                 "%2Fetc%2Fpasswd", "uploads/../../secret.png"):
        assert client.get(f"/files/{name}").status_code in (403, 404), name
    for image in ("../secret.png", str(secret), "/etc/passwd", "~/secret.png", "link.png", "linkdir/secret.png", "nope.png"):
        r = client.post("/api/tools/caption", json={"image": image})
        assert r.status_code in (403, 404) and r.json()["error"], image
    assert client.post("/api/workflows/..%2Fx/runs", json={}).status_code in (400, 404)
    assert client.get("/api/runs/run:..%2F..").status_code == 404


def test_an_input_root_lends_its_images(make_client, tmp_path, example_image):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.png").write_bytes(example_image.read_bytes())
    client, _ = make_client(input_roots=[photos])
    r = client.post("/api/tools/caption?wait=true", json={"image": "a.png"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body[0] if isinstance(body, list) else body)["error"] is None


def test_uploads_pass_the_safe_loader(make_client, tiny_config, example_image):
    client, server = make_client()
    png = example_image.read_bytes()
    r = client.post("/api/tools/caption?wait=true", files={"image": ("photo.png", png, "image/png")},
                    data={"detail": "short"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body[0] if isinstance(body, list) else body)["error"] is None
    [kept] = (server.roots.out / "uploads").iterdir()
    assert kept.read_bytes() == png
    bad = client.post("/api/tools/caption", files={"image": ("notes.png", b"<html>hello</html>", "image/png")})
    assert bad.status_code == 400 and "notes.png" in bad.json()["error"]
    assert client.post("/api/tools/caption", files={"image": ("empty.png", b"", "image/png")}).status_code == 400
    assert client.post("/api/tools/draw", files={"prompt": ("p.png", png, "image/png")}).status_code == 400
    small = tiny_config.model_copy(update={"images": tiny_config.images.model_copy(update={"max_file_mb": 0.001})})
    client2, _ = make_client(config=small, out=server.roots.out / "small")
    assert client2.post("/api/tools/caption", files={"image": ("big.png", png, "image/png")}).status_code == 413


# --- the command ----------------------------------------------------------------------------------

def test_serve_starts_answers_and_stops_on_ctrl_c(tmp_path):
    """`visionloop serve --port 0` in a child process: it says where it listens, answers, and a
    Ctrl-C (SIGINT) stops it cleanly (exit 0)."""
    import os
    import re
    import signal
    import subprocess
    import sys

    import httpx

    child = subprocess.Popen([sys.executable, "-m", "visionloop", "serve", "--port", "0", "--out", str(tmp_path / "o")],
                             stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        line = child.stderr.readline()
        found = re.search(r"serving (http://127\.0\.0\.1:\d+)/", line)
        assert found, line
        url = found.group(1)
        assert any(t["name"] == "draw" for t in httpx.get(f"{url}/api/tools", timeout=30).json())
        assert httpx.get(f"{url}/api/runs", timeout=30).json()["total"] == 0
        child.send_signal(signal.SIGINT)
        assert child.wait(30) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stderr.close()


def test_serve_watch_needs_watch_rules(cli):
    r = cli("serve", "--port", "0", "--watch")
    assert r.code == 1 and "no `watch:` rules" in r.err
