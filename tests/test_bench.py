"""`visionloop bench` on the tiny profile: one JSON line per dtype (and the TAESD decode), the
summary last; plain output says the same in words. Timings are not checked, only their shape."""

from __future__ import annotations

import pytest

from json_lines import parse

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_bench_json_lines(cli):
    r = cli("bench", "--quick", "--json")
    assert r.code == 0, r.err
    rows, summary = parse(r.out)
    draws = [row for row in rows if row["model"] == "diffusion"]
    assert [(d["dtype"], d["vae"]) for d in draws][:2] == [("float32", None), ("bfloat16", None)]
    assert draws[-1]["vae"] == "taesd" and draws[-1]["auto"]
    for d in draws:
        assert d["status"] == "ok" and d["error"] is None and d["steps"] == 2 and d["width"] == 64
        assert d["step_seconds"] > 0 and d["picture_seconds"] >= d["step_seconds"] and d["peak_memory_mb"] > 0
    assert any(row["model"] == "vision" for row in rows)
    assert summary["command"] == "bench" and summary["device"] == "cpu" and summary["exit"] == 0


def test_bench_plain_and_bad_model(cli, tmp_path):
    from visionloop.models.measure_sd import supported_dtypes

    assert supported_dtypes("cpu") == ["float32", "bfloat16"]
    config = tmp_path / "config.yaml"
    config.write_text("profile: tiny\nprofiles:\n  tiny:\n    vision: {model: tiny}\n"
                      "    diffusion: {model: ./no-such-model}\n")
    r = cli("--config", config, "bench", "--quick")
    assert r.code != 0 and "no-such-model" in r.err and "Traceback" not in r.err
    assert len(r.err.strip().splitlines()) <= 2
