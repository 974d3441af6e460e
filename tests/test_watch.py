"""The watcher end to end: real files in temporary folders, the real workflow engine, the tiny
models through the session's shared loop. Settle times are short (0.1-0.3 s)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from visionloop.watch import Ledger, WatchError, Watcher
from watch_helpers import make_rule, png, wait_for, watch_folder

#: Every partial-download, sync-tool, OS-junk and hidden name the issue lists.
IGNORED = [".syncthing.a.png.tmp", "~syncthing~a.png.tmp", "a.png.part", "a.png.partial", "a.crdownload",
           "a.png.download", "a.png.tmp", ".x.png.tmp", "._a.png", ".DS_Store", "Thumbs.db", ".hidden.png"]


@pytest.fixture
def env(tmp_path):
    return watch_folder(tmp_path)


def runs(env: Path) -> list[Path]:
    out = env / "out"
    return sorted(p for p in out.iterdir() if p.is_dir()) if out.exists() else []


def manifest_text(run: Path) -> str:
    """The run manifest as one JSON string (it records the sha256 of every input file)."""
    text = json.dumps(json.loads((run / "manifest.json").read_text()))
    return text


@pytest.fixture(scope="module")
def warm_loop(loop, example_image_path=Path(__file__).resolve().parent.parent / "examples" / "lighthouse.png"):
    """Load the tiny models before any timed wait (the first job would otherwise pay for it)."""
    from visionloop.tools import ToolCall

    assert loop.call(ToolCall("caption", {"image": [str(example_image_path)]}))[0].ok
    return loop


@pytest.fixture
def make_watcher(warm_loop, registry, tiny_config):
    loop = warm_loop
    made = []

    def make(rules, **kw):
        w = Watcher(rules, loop, registry, tiny_config, **kw)
        made.append(w)
        return w

    yield make
    for w in made:
        w.stop()


def test_catch_up_scan_then_restart_does_not_reprocess(env, make_watcher):
    for i in range(3):
        png(env / "in" / f"p{i}.png", i)
    w = make_watcher([make_rule(env)])
    assert w.run_once() == {"processed": 3, "failed": 0, "skipped": 0, "unfinished": 0}
    assert len(runs(env)) == 3 and all((r / "manifest.json").is_file() for r in runs(env))
    w.stop()
    w2 = make_watcher([make_rule(env)])  # a restart: same ledger, same files
    assert w2.run_once() == {"processed": 0, "failed": 0, "skipped": 3, "unfinished": 0}
    assert len(runs(env)) == 3
    assert sorted(p.name for p in (env / "in").iterdir()) == ["p0.png", "p1.png", "p2.png"]  # kept in place


def test_duplicate_content_runs_once(env, make_watcher):
    png(env / "in" / "a.png", 5)
    (env / "in" / "copy of a.png").write_bytes((env / "in" / "a.png").read_bytes())
    w = make_watcher([make_rule(env)])
    assert w.run_once() == {"processed": 1, "failed": 0, "skipped": 1, "unfinished": 0}
    assert len(runs(env)) == 1
    assert w.status()["alt"]["duplicate"] == 1 and w.status()["alt"]["done"] == 1


def test_every_ignored_name_is_left_alone(env, make_watcher):
    for i, name in enumerate(IGNORED):
        png(env / "in" / name, i)
    png(env / "in" / "real.png", 77)
    w = make_watcher([make_rule(env, patterns=["*"])])
    assert w.run_once() == {"processed": 1, "failed": 0, "skipped": 0, "unfinished": 0}
    ledger_rows = next(iter(w.ledgers.values())).rows()
    assert [Path(r["path"]).name for r in ledger_rows] == ["real.png"]
    assert all((env / "in" / n).exists() for n in IGNORED)


def test_corrupt_image_goes_to_failed_with_record_and_is_not_retried(env, make_watcher):
    failed = env / "in" / "failed"
    failed.mkdir()
    (failed / "broken.png").write_bytes(b"an older failure")
    (env / "in" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    w = make_watcher([make_rule(env)])
    assert w.run_once() == {"processed": 0, "failed": 1, "skipped": 0, "unfinished": 0}
    moved = failed / "broken (1).png"
    assert moved.is_file() and (failed / "broken.png").read_bytes() == b"an older failure"
    record = json.loads((failed / "broken (1).png.error.json").read_text())
    assert "broken.png" in record["error"] and record["step"] == "cap" and record["attempts"] == 1
    assert record["versions"]["visionloop"] and record["sha256"]
    assert not (env / "in" / "broken.png").exists()
    assert w.run_once() == {"processed": 0, "failed": 0, "skipped": 0, "unfinished": 0}  # the rescan leaves it alone
    # --retry-failed puts it back in line (it fails again: same bytes)
    assert w.retry_failed() == 1
    assert (env / "in" / "broken (1).png").exists() and not (failed / "broken (1).png.error.json").exists()
    assert w.run_once()["failed"] == 1


def test_empty_file_fails_at_the_ceiling(env, make_watcher):
    (env / "in" / "empty.png").touch()
    w = make_watcher([make_rule(env, settle=0.05, ceiling=0.5)])
    assert w.run_once() == {"processed": 0, "failed": 1, "skipped": 0, "unfinished": 0}
    assert json.loads((env / "in" / "failed" / "empty.png.error.json").read_text())["error"] == "empty file"


def test_output_inside_watched_folder_is_refused(env, loop, registry, tiny_config):
    with pytest.raises(WatchError, match="inside the watched folder"):
        Watcher([make_rule(env, output=str(env / "in" / "out"))], loop, registry, tiny_config)


def test_second_watcher_on_same_output_refused(env, make_watcher, loop, registry, tiny_config):
    make_watcher([make_rule(env)])
    (env / "in2").mkdir()
    with pytest.raises(WatchError, match=r"already being watched by pid \d+"):
        Watcher([make_rule(env, name="b", folder=str(env / "in2"))], loop, registry, tiny_config)


def test_slow_writer_is_taken_once_after_it_settles(env, make_watcher):
    src = png(env / "src.png", 3)
    data = src.read_bytes()
    announced = []
    w = make_watcher([make_rule(env, settle=0.3)], announce=announced.append)
    w.start()
    target = env / "in" / "slow.png"
    chunk = max(1, len(data) // 6)
    with open(target, "wb") as fh:  # a file growing in chunks, with pauses shorter than settle
        for i in range(0, len(data), chunk):
            fh.write(data[i:i + chunk])
            fh.flush()
            time.sleep(0.15)
    assert wait_for(lambda: len(announced) >= 1)
    time.sleep(0.5)  # nothing more comes
    assert len(announced) == 1 and "done" in announced[0]
    (run,) = runs(env)
    import hashlib

    assert hashlib.sha256(data).hexdigest() in manifest_text(run)  # the whole file was read


@pytest.mark.parametrize("poll", [False, True], ids=["events", "polling"])
def test_temp_then_rename(env, make_watcher, poll):
    announced = []
    w = make_watcher([make_rule(env, settle=0.1)], announce=announced.append, poll=poll)
    w.start()
    tmp = env / "in" / ".x.png.tmp"
    png(tmp, 9)
    time.sleep(0.4)
    assert announced == []  # the temp name is never taken
    tmp.rename(env / "in" / "x.png")
    assert wait_for(lambda: len(announced) >= 1)
    time.sleep(0.4)
    assert len(announced) == 1 and "x.png" in announced[0]
    assert [Path(r["path"]).name for r in next(iter(w.ledgers.values())).rows()] == ["x.png"]


def _burst(env, make_watcher, n):
    announced = []
    w = make_watcher([make_rule(env, settle=0.1)], announce=announced.append)
    w.start()
    for i in range(n):
        png(env / "in" / f"b{i:03d}.png", i)
    assert wait_for(lambda: len(announced) >= n, timeout=120 + n)
    time.sleep(0.5)
    assert len(announced) == n
    rows = next(iter(w.ledgers.values())).rows()
    assert len(rows) == n and {r["state"] for r in rows} == {"done"} and {r["attempts"] for r in rows} == {1}
    assert len(runs(env)) == n


def test_burst_of_30_files_each_once(env, make_watcher):
    _burst(env, make_watcher, 30)


@pytest.mark.slow
def test_burst_of_200_files_each_once(env, make_watcher):
    _burst(env, make_watcher, 200)


def test_job_left_running_by_a_dead_process_is_redone(env, make_watcher, monkeypatch, registry, tiny_config):
    from visionloop.images import sha256_file as file_sha256

    f = png(env / "in" / "a.png", 1)
    old_run = env / "out" / "20240101-000000-alt-a"  # what the killed run left: a manifest saying running
    old_run.mkdir(parents=True)
    (old_run / "manifest.json").write_text(json.dumps({"format": "visionloop-run/1", "status": "running",
                                                       "steps": [], "error": None}))
    from visionloop.watch.ledger import Key
    from visionloop.watch.rules import fingerprint
    from visionloop.workflows import load_workflow

    rule = make_rule(env)
    key = Key(file_sha256(f), "alt", fingerprint(load_workflow(rule.workflow, tiny_config, registry), rule))
    led = Ledger(env / "out")
    led.claim(key, f)
    led.start(key)
    led.set_run_dir(key, str(old_run))
    led.close()
    recorded = []  # the runner names each run folder to the ledger as soon as it exists
    real = Ledger.set_run_dir
    monkeypatch.setattr(Ledger, "set_run_dir", lambda self, *a: (recorded.append(a[1]), real(self, *a))[1])
    w = make_watcher([make_rule(env)])
    old = json.loads((old_run / "manifest.json").read_text())
    assert old["status"] == "interrupted" and "interrupted" in old["error"]
    assert w.run_once()["processed"] == 1
    (row,) = next(iter(w.ledgers.values())).rows()
    assert row["state"] == "done" and row["redone"] == 1
    assert recorded == [row["run_dir"]] and Path(row["run_dir"]) != old_run
    assert json.loads((Path(row["run_dir"]) / "manifest.json").read_text())["status"] == "ok"


def test_once_fails_a_settled_empty_file_at_once_but_watching_waits(env, make_watcher):
    import threading

    (env / "in" / "empty.png").touch()
    announced = []
    w = make_watcher([make_rule(env, settle=0.05)], announce=announced.append)  # ceiling: the default 300 s
    w.start()
    time.sleep(0.6)
    assert (env / "in" / "empty.png").exists() and announced == []  # watching: its writer may still come
    w.stop()
    once = make_watcher([make_rule(env, settle=0.05)])
    done = {}
    t = threading.Thread(target=lambda: done.update(counts=once.run_once()), daemon=True)
    t.start()
    t.join(60)  # not the 300 s ceiling: nothing will write to it during a one-off pass
    assert done.get("counts") == {"processed": 0, "failed": 1, "skipped": 0, "unfinished": 0}
    assert json.loads((env / "in" / "failed" / "empty.png.error.json").read_text())["error"] == "empty file"


def test_once_names_each_file_it_keeps_waiting_for(env, make_watcher):
    import threading

    data = png(env / "src.png", 4).read_bytes()
    notes = []
    w = make_watcher([make_rule(env, settle=0.3)], on_wait=notes.append)
    w.wait_note_after = 0.3  # the CLI's is 5 s
    chunk = max(1, len(data) // 6)
    fh = open(env / "in" / "slow.png", "wb")
    fh.write(data[:chunk])
    fh.flush()

    def writer():  # pauses shorter than settle: it keeps changing for ~1 s
        with fh:
            for i in range(chunk, len(data), chunk):
                time.sleep(0.15)
                fh.write(data[i:i + chunk])
                fh.flush()

    t = threading.Thread(target=writer)
    t.start()
    counts = w.run_once()
    t.join()
    assert counts == {"processed": 1, "failed": 0, "skipped": 0, "unfinished": 0}
    assert len(notes) == 1, notes  # one line per file, not one per poll
    assert notes[0].startswith(f"[alt] waiting for {env / 'in' / 'slow.png'}: not settled after ")
    assert "needs 0.3 s unchanged" in notes[0]
