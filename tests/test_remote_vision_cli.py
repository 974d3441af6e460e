"""The server backends from the outside: one-shot commands, workflows and their manifests, the
watcher, `visionloop models` and `visionloop pull`; the API key never printed anywhere; the
server path never imports torch."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest

from remote_vision_helpers import (DIGEST_OLLAMA, ROOT, SECRET, fake, make_loop, vision_section,  # noqa: F401
                                   write_config)
from visionloop.tools import ToolCall


def lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


@pytest.fixture
def ollama_config(fake, tiny_cache, tmp_path, monkeypatch):
    path = write_config(tmp_path, tiny_cache, vision_section("ollama", fake))
    monkeypatch.setenv("VISIONLOOP_CONFIG", str(path))
    return path


def test_the_api_key_is_never_printed_logged_or_written(fake, tiny_cache, tmp_path, monkeypatch, cli, caplog,
                                                         example_image):
    fake.api_key = SECRET
    monkeypatch.setenv("VL_TEST_KEY", SECRET)
    for backend in ("ollama", "openai"):
        config = write_config(tmp_path, tiny_cache, vision_section(backend, fake, api_key_env="VL_TEST_KEY"))
        monkeypatch.setenv("VISIONLOOP_CONFIG", str(config))
        caplog.set_level(logging.DEBUG)
        seen = [cli("-v", "-v", "caption", example_image, "--json"),
                cli("-v", "-v", "run", "alt-text", "--input", f"image={example_image}", "--json",
                    "--out", tmp_path / "runs"),
                cli("models", "--json"), cli("pull", "--json")]
        assert [r.code for r in seen] == [0, 0, 0, 0], [r.err for r in seen]
        monkeypatch.setenv("VL_TEST_KEY", SECRET + "-wrong")
        seen.append(cli("-v", "caption", example_image, "--json"))
        assert seen[-1].code == 1 and "$VL_TEST_KEY" in seen[-1].err
        monkeypatch.setenv("VL_TEST_KEY", SECRET)
        for result in seen:
            assert SECRET not in result.out and SECRET not in result.err
        assert SECRET not in caplog.text
    assert {r["headers"].get("Authorization") for r in fake.requests if r["path"] != "/api/pull"} >= {
        f"Bearer {SECRET}"}  # it was sent, to the server only
    written = [p for p in (tmp_path / "runs").rglob("*") if p.is_file()]
    assert any(p.name == "manifest.json" for p in written)
    for path in written:
        assert SECRET.encode() not in path.read_bytes(), path


def test_a_workflow_manifest_records_backend_server_model_and_digest(fake, ollama_config, cli, tmp_path,
                                                                     example_image):
    result = cli("run", "describe-and-redraw", "--input", f"image={example_image}", "--json", "--out", tmp_path / "r")
    assert result.code == 0, result.err
    (manifest_path,) = (tmp_path / "r").rglob("manifest.json")
    manifest = json.loads(manifest_path.read_text())
    env = manifest["environment"]
    assert env["models"]["llava"] == {"model": "llava:7b", "source": fake.url, "revision": DIGEST_OLLAMA}
    assert env["profile_settings"]["vision"]["backend"] == "ollama"
    text = json.dumps(manifest)
    assert '"backend": "ollama"' in text and f'"digest": "{DIGEST_OLLAMA}"' in text
    assert fake.chats()[0]["body"]["messages"][0]["content"] == "Describe this image in one sentence."


def test_models_lists_what_the_server_has_and_marks_the_profiles(fake, ollama_config, cli):
    result = cli("models", "--json")
    assert result.code == 0, result.err
    *entries, summary = lines(result.out)
    assert summary["summary"]["command"] == "models"
    served = {e["name"]: e for e in entries if e["backend"] == "ollama"}
    assert served["llava:7b"]["used_by"] == ["vision.model"] and served["llava:7b"]["digest"] == DIGEST_OLLAMA
    assert served["llama3:latest"]["used_by"] == [] and served["llava:7b"]["size"] == 4_733_363_377
    assert any(e["backend"] == "built-in" and e["used_by"] == ["diffusion.model"] for e in entries)
    plain = cli("models")
    assert plain.code == 0 and "* llava:7b" in plain.out and "  llama3:latest" in plain.out


def test_pull_through_ollama_then_every_tool_works(fake, tiny_cache, tmp_path, monkeypatch, cli, example_image):
    config = write_config(tmp_path, tiny_cache, vision_section("ollama", fake, model="llava:13b"))
    monkeypatch.setenv("VISIONLOOP_CONFIG", str(config))
    before = cli("caption", example_image)
    assert before.code == 1 and "llava:13b is not pulled: run `ollama pull llava:13b` (or `visionloop pull`)" in before.err
    assert "! llava:13b" in cli("models").out
    pulled = cli("pull", "--json")
    assert pulled.code == 0, pulled.err
    assert [r["body"] for r in fake.requests if r["path"] == "/api/pull"] == [{"model": "llava:13b", "stream": True}]
    records = lines(pulled.out)
    assert records[0]["model"] == "llava:13b" and records[0]["status"].startswith("pulled into Ollama at")
    after = cli("caption", example_image)
    assert after.code == 0 and after.out.strip() == fake.answer


def test_pull_of_a_model_the_registry_lacks(fake, tiny_cache, tmp_path, monkeypatch, cli):
    monkeypatch.setenv("VISIONLOOP_CONFIG", str(write_config(tmp_path, tiny_cache,
                                                             vision_section("ollama", fake, model="nope:1b"))))
    result = cli("pull")
    assert result.code == 1
    assert "could not pull nope:1b: pull model manifest: file does not exist" in result.err


def test_pull_fetches_only_the_files_the_loaders_read(tmp_path, tiny_cache, monkeypatch, cli):
    import huggingface_hub

    calls = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download",
                        lambda repo, **kw: calls.append((repo, kw)) or str(tmp_path / repo))
    monkeypatch.setattr("visionloop.models.loading.hub_reachable", lambda: True)
    config = write_config(tmp_path, tiny_cache, {"model": "llava-hf/llava-1.5-7b-hf", "revision": "main"})
    text = config.read_text().replace("model: tiny", "model: stable-diffusion-v1-5/stable-diffusion-v1-5")
    config.write_text(text)
    monkeypatch.setenv("VISIONLOOP_CONFIG", str(config))
    refused = cli("pull")  # HF_HUB_OFFLINE=1 in the tests
    assert refused.code == 1 and "`visionloop pull` needs the network" in refused.err and not calls
    monkeypatch.delenv("HF_HUB_OFFLINE")
    result = cli("pull")
    assert result.code == 0, result.err
    (llava, llava_kw), (sd, sd_kw) = calls
    assert llava == "llava-hf/llava-1.5-7b-hf" and llava_kw["revision"] == "main"
    assert "*.safetensors" in llava_kw["allow_patterns"] and "*.bin" not in llava_kw["allow_patterns"]
    assert sd == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    assert "*.safetensors" not in sd_kw["allow_patterns"] and "*/*.safetensors" in sd_kw["allow_patterns"]
    assert "*.fp16.*" in sd_kw["ignore_patterns"]  # root checkpoints and variants stay on the hub


def test_models_lists_the_hub_cache_with_sizes(tmp_path, tiny_cache, monkeypatch, cli):
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    blobs = cache / "models--llava-hf--llava-1.5-7b-hf" / "blobs"
    blobs.mkdir(parents=True)
    (blobs / "abc").write_bytes(b"x" * 3_000_000)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("VISIONLOOP_CONFIG", str(write_config(tmp_path, tiny_cache, {"model":
                                                                                   "llava-hf/llava-1.5-7b-hf"})))
    result = cli("models")
    assert result.code == 0, result.err
    line = next(line for line in result.out.splitlines() if "llava-hf/llava-1.5-7b-hf" in line)
    assert line.split() == ["*", "llava-hf/llava-1.5-7b-hf", "3", "MB", "[vision.model]"]


def test_the_watcher_retries_a_server_error_and_nothing_moves_to_failed(fake, tiny_cache, tmp_path, registry,
                                                                        watchers):
    from visionloop.config import load_config
    from visionloop.watch import Watcher
    from watch_helpers import make_rule, png, watch_folder

    watch_folder(tmp_path)
    png(tmp_path / "in" / "a.png", 1)
    fake.fail = [503]
    config = write_config(tmp_path, tiny_cache, vision_section("ollama", fake, retries=0))
    loop = make_loop(config, registry, tmp_path / "out")
    try:
        w = Watcher([make_rule(tmp_path, settle=0.1)], loop, registry, load_config(str(config)), backoff=0.05)
        watchers.append(w)
        assert w.run_once() == {"processed": 1, "failed": 0, "skipped": 0, "unfinished": 0}
    finally:
        loop.close()
    rows = next(iter(w.ledgers.values())).rows()
    assert rows[0]["state"] == "done" and rows[0]["attempts"] == 2
    assert not (tmp_path / "in" / "failed").exists()


def test_a_server_that_stays_down_leaves_the_file_waiting_not_failed(fake, tiny_cache, tmp_path, registry,
                                                                      watchers):
    """Past the rule's retries, a server error is still not the file's fault: it stays where it
    is, `queued` in the ledger, and the next run takes it (and succeeds once the server is back)."""
    from visionloop.config import load_config
    from visionloop.watch import Watcher
    from watch_helpers import make_rule, png, watch_folder

    watch_folder(tmp_path)
    png(tmp_path / "in" / "a.png", 1)
    fake.fail = [503] * 50
    config = write_config(tmp_path, tiny_cache, vision_section("ollama", fake, retries=0))
    rule = make_rule(tmp_path, settle=0.1)
    rule.retries = 1
    loop = make_loop(config, registry, tmp_path / "out")
    try:
        w = Watcher([rule], loop, registry, load_config(str(config)), backoff=0.05)
        watchers.append(w)
        counts = w.run_once()
        assert counts["failed"] == 0 and counts["processed"] == 0, counts
        rows = next(iter(w.ledgers.values())).rows()
        assert rows[0]["state"] == "queued" and "HTTP 503" in rows[0]["error"]
        assert (tmp_path / "in" / "a.png").exists() and not (tmp_path / "in" / "failed").exists()
        fake.fail = []  # the server is back: the next run takes the waiting file
        w.stop()
        w2 = Watcher([rule], loop, registry, load_config(str(config)), backoff=0.05)
        watchers.append(w2)
        assert w2.run_once()["processed"] == 1
    finally:
        loop.close()
    assert next(iter(w2.ledgers.values())).rows()[0]["state"] == "done"


def test_the_server_path_never_imports_torch(fake, ollama_config, example_image):
    code = ("import sys; from visionloop.cli.app import main; "
            f"rc = main(['caption', {str(example_image)!r}, '-q']); "
            "assert rc == 0, rc; assert 'torch' not in sys.modules and 'transformers' not in sys.modules; "
            "print('no torch')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0 and "no torch" in done.stdout, done.stderr


def test_one_loop_serves_see_caption_read_text_and_restyle(fake, tiny_cache, tmp_path, registry, example_image):
    loop = make_loop(write_config(tmp_path, tiny_cache, vision_section("ollama", fake)), registry, tmp_path / "out")
    try:
        calls = [("see", {"image": [str(example_image)], "question": "what is it?"}),
                 ("read-text", {"image": [str(example_image)], "engine": "llava"}),
                 ("restyle", {"image": str(example_image), "style": "an ink sketch", "seed": 1, "steps": 2})]
        results = [loop.call(ToolCall(name, args))[0] for name, args in calls]
    finally:
        loop.close()
    assert all(r.ok for r in results), [r.error for r in results]
    assert results[2].data["caption"] == fake.answer.rstrip(".") or results[2].data["caption"].startswith("A lighthouse")
    assert results[2].data["caption_call"]["backend"] == "ollama"
    assert len(fake.chats()) == 3 and loop.ctx.models.loads["llava"] == 1
