"""The Ray engine's driver without a Ray: connecting, how many actors, and the items Ray never
returns (stand-ins for `ray`; the batch on a real local Ray is tests/test_ray_batch.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


class _NoCluster:
    """A stand-in `ray` module whose `init` fails as Ray's does when nothing answers."""

    def __init__(self, error: Exception):
        self.error = error

    def is_initialized(self) -> bool:
        return False

    def init(self, **kwargs):
        raise self.error


@pytest.mark.parametrize("address, error, message", [
    ("auto", ConnectionError("Could not find any running Ray instance. Please specify ...\nmore"),
     "--address: cannot reach the Ray cluster at auto: Could not find any running Ray instance. Please specify ..."),
    ("ray://10.0.0.9:10001", ConnectionError("ray client connection timeout"),
     "--address: cannot reach the Ray cluster at ray://10.0.0.9:10001: ray client connection timeout"),
    (None, RuntimeError(""), "cannot start a local Ray: RuntimeError"),
])
def test_a_cluster_that_does_not_answer_is_one_line(address, error, message):
    from visionloop.errors import VisionloopError
    from visionloop.workflows.ray_engine import _connect

    with pytest.raises(VisionloopError) as caught:
        _connect(_NoCluster(error), address, verbose=False)
    assert str(caught.value) == message


class _Initialized:
    """A stand-in `ray` already initialized (so nothing is started or shut down)."""

    def is_initialized(self) -> bool:
        return True


@pytest.mark.parametrize("ending", ["ctrl-c", "lost"])
def test_items_ray_never_returned_are_reported(tiny_config, registry, tmp_path, monkeypatch, ending):
    """Ctrl-C while items are on the actors: the batch is interrupted, what came back is kept and the
    rest is "not run". A block Ray gave up on: its items are "failed", saying so; the batch goes on."""
    from visionloop.workflows import load_workflow, ray_engine
    from visionloop.workflows.batch import BatchItem

    wf = load_workflow("describe-folder", tiny_config, registry)
    files = [tmp_path / f"p{i}.png" for i in range(3)]  # never opened: nothing runs

    def rows(ray, wf, inputs, name, todo, *rest):
        yield BatchItem(str(todo[1]), "ok", workflow=wf.name)
        if ending == "ctrl-c":
            raise KeyboardInterrupt

    monkeypatch.setattr(ray_engine, "import_ray", _Initialized)
    monkeypatch.setattr(ray_engine, "_run_on_ray", rows)
    seen = []
    outcome = ray_engine.run_batch_ray(wf, {}, "photo", files, tiny_config, tmp_path, tiny_config.ray,
                                       on_item=seen.append)
    assert [i.file for i in outcome.items] == [str(f) for f in files]  # in the files' order
    assert [i.status for i in outcome.items] == (["not_run", "ok", "not_run"] if ending == "ctrl-c"
                                                 else ["failed", "ok", "failed"])
    assert outcome.interrupted == (ending == "ctrl-c") and seen[0].file == str(files[1]) and len(seen) == 3
    error = outcome.items[0].error
    assert error == ("not run: the batch was interrupted" if ending == "ctrl-c" else ray_engine.LOST)


class _Resources:
    def __init__(self, cpus: float, gpus: float = 0.0):
        self.res = {"CPU": cpus, **({"GPU": gpus} if gpus else {})}

    def cluster_resources(self) -> dict:
        return self.res


@pytest.mark.parametrize("res, flags, local, todo, expected", [
    (_Resources(2), {}, True, 8, 2),  # as many as fit
    (_Resources(2), {"workers": 5}, True, 8, 2),  # a local Ray: never more than fit (they would wait for ever)
    (_Resources(2), {"workers": 5}, False, 8, 5),  # a cluster may scale up
    (_Resources(8), {}, True, 3, 3),  # never more than there are items
    (_Resources(16, 4), {"gpus_per_worker": 1.0}, True, 100, 4),
    (_Resources(16, 4), {"gpus_per_worker": 0.5}, True, 100, 8),
])
def test_how_many_actors(tiny_config, res, flags, local, todo, expected):
    from visionloop.workflows.ray_engine import _workers, settings

    assert _workers(res, settings(tiny_config, **flags), todo, local) == expected


@pytest.mark.parametrize("res, flags, message", [
    (_Resources(2), {"gpus_per_worker": 1.0}, "--gpus-per-worker 1: this Ray has 0 GPUs"),
    (_Resources(2), {"cpus_per_worker": 4.0}, "--cpus-per-worker 4: this Ray has 2 CPUs"),
])
def test_actors_a_local_ray_cannot_place_are_one_line(tiny_config, res, flags, message):
    from visionloop.errors import UsageError
    from visionloop.workflows.ray_engine import _workers, settings

    with pytest.raises(UsageError, match=f"^{message}$"):
        _workers(res, settings(tiny_config, **flags), 8, True)


def test_a_bare_address_nothing_answers_at_is_one_line_not_a_hang():
    """HOST:PORT makes Ray wait for its GCS for ever: a TCP connect goes first, and Ray is never asked."""
    import socket

    from visionloop.errors import VisionloopError
    from visionloop.workflows.ray_engine import _connect

    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(VisionloopError) as caught:
        _connect(_NoCluster(AssertionError("ray.init must not be called")), f"127.0.0.1:{port}", verbose=False)
    message = str(caught.value)
    assert message.startswith(f"--address 127.0.0.1:{port}: no Ray GCS answers there (")
    assert message.endswith("from elsewhere use ray://HOST:10001 (Ray Client)") and "\n" not in message


def _manifest(out, wf, name, stem, path, status, started):
    import json

    folder = out / f"20261207-120000-{wf.name}-{stem}"
    folder.mkdir(parents=True)
    steps = [{"id": "look", "tool": "caption", "status": "running" if status == "running" else status}]
    (folder / "manifest.json").write_text(json.dumps({
        "status": status, "started": started, "workflow": {"name": wf.name, "sha256": wf.sha256},
        "inputs": {name: {"value": path}}, "outputs": {"text": "x"} if status == "ok" else {},
        "error": "broken" if status == "failed" else None, "failed_step": "look" if status == "failed" else None,
        "steps": steps}))
    return folder


def test_ctrl_c_on_ray_counts_the_runs_that_ended_on_the_actors(tiny_config, registry, tmp_path, monkeypatch):
    """Ctrl-C: an item that finished on an actor but whose row never came back is reported as its
    run folder says (ok, failed; still "running": interrupted); the rest are "not_run" (never
    "skipped", which means finished in an earlier run), and a run from before the batch counts not."""
    import json

    from visionloop.paths import resolved_path
    from visionloop.workflows import load_workflow, ray_engine
    from visionloop.workflows.batch import BatchItem
    from visionloop.workflows.resume import runs_since

    wf = load_workflow("describe-folder", tiny_config, registry)
    files = [tmp_path / f"p{i}.png" for i in range(5)]  # never opened: nothing runs
    out = tmp_path / "runs"
    paths = {f.stem: str(resolved_path(f)) for f in files}
    _manifest(out, wf, "photo", "p3", paths["p3"], "ok", "2000-01-01T00:00:00.000+00:00")  # an earlier batch's

    def rows(ray, wf, inputs, name, todo, *rest):
        yield BatchItem(str(todo[1]), "ok", workflow=wf.name)
        _manifest(out, wf, name, "p0", paths["p0"], "failed", "9999-01-01T00:00:00.000+00:00")
        _manifest(out, wf, name, "p2", paths["p2"], "running", "9999-01-01T00:00:00.000+00:00")
        raise KeyboardInterrupt

    monkeypatch.setattr(ray_engine, "import_ray", _Initialized)
    monkeypatch.setattr(ray_engine, "_run_on_ray", rows)
    outcome = ray_engine.run_batch_ray(wf, {}, "photo", files, tiny_config, out, tiny_config.ray)
    assert [i.status for i in outcome.items] == ["failed", "ok", "interrupted", "not_run", "not_run"]
    assert outcome.summary == {"total": 5, "ok": 1, "failed": 1, "interrupted": 1, "skipped": 0, "not_run": 2}
    assert outcome.interrupted and outcome.status == "interrupted"
    failed, _, stopped = outcome.items[:3]
    assert (failed.error, failed.failed_step, Path(failed.run_dir).name) == ("broken", "look", f"20261207-120000-{wf.name}-p0")
    assert stopped.error == "interrupted (Ctrl-C)" and stopped.steps[0]["status"] == "running"  # a cluster's: left
    # a Ray this process shut down: the stopped run's manifest is rewritten to say so
    again = runs_since(wf, {}, "photo", {str(files[2]): paths["p2"]}, out, "2026-01-01", mark=True)
    manifest = json.loads((Path(stopped.run_dir) / "manifest.json").read_text())
    assert again[str(files[2])].status == "interrupted" and manifest["status"] == "interrupted"
    assert again[str(files[2])].steps[0]["status"] == "interrupted"


@pytest.mark.parametrize("address, ok", [
    ("auto", True), ("ray://head", True), ("ray://head:10001", True), ("ray://[::1]:10001", True),
    ("10.0.0.1:6379", True), ("head", False), ("ray://", False), ("http://head:8265", False), (" ", False),
])
def test_the_address_forms_taken(address, ok):
    from visionloop.config_schema import ray_address_problem

    assert (ray_address_problem(address) is None) == ok


class _Recorder:
    """A stand-in `ray` whose `init` notes Ray's C++ log level and writes to fd 2 as Ray's core does."""

    def __init__(self):
        self.level = "unset"

    def is_initialized(self) -> bool:
        return False

    def init(self, **kwargs):
        import os

        self.level = os.environ.get("RAY_BACKEND_LOG_LEVEL")
        os.write(2, b"[I logging.cc] Set ray log level from environment variable RAY_BACKEND_LOG_LEVEL\n")


@pytest.mark.parametrize("verbose", [False, True])
def test_ray_core_lines_only_with_v(capfd, monkeypatch, verbose):
    """Ray's C++ lines (an E-line on every actor pool, ray-project/ray#53727) are off unless -v."""
    import os

    from visionloop.workflows.ray_engine import _connect

    monkeypatch.delenv("RAY_BACKEND_LOG_LEVEL", raising=False)
    ray = _Recorder()
    assert _connect(ray, None, verbose=verbose)
    assert ray.level == (None if verbose else "fatal") and "RAY_BACKEND_LOG_LEVEL" not in os.environ
    assert ("Set ray log level" in capfd.readouterr().err) == verbose
