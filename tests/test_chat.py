"""The chat engine driven directly: routing through the loop, follow-ups in context,
streaming, image numbering, every chat command, cancelling, bad paths, JSON lines."""

from __future__ import annotations

import _thread
import json
import threading
import time
from pathlib import Path

import pytest

from visionloop.hookspecs import hookimpl
from chat_fixtures import Talk


def test_question_streams_and_follow_up_has_the_earlier_turn(chat_loop, pics):
    t = Talk(chat_loop, stream=True)
    out, err = t.say(f"what is in {pics[0]}?")
    first = t.chat.session.last_result
    assert first.tool == "see" and first.ok and first.text
    assert out.strip() == first.text  # streamed token by token, not printed twice
    assert first.data["question"] == "what is in this image?" and first.data["history_turns"] == 0
    t.say("and what colour is it?")
    second = t.chat.session.last_result
    assert second.data["history_turns"] == 1
    assert "what is in this image?" in second.data["prompt"] and first.text in second.data["prompt"]
    # a question about another image starts a fresh memory
    t.say(f"is {pics[1]} bright?")
    assert t.chat.session.last_result.data["history_turns"] == 0


def test_history_is_trimmed_to_the_context_with_a_note(chat_loop, pics, monkeypatch):
    t = Talk(chat_loop)
    for q in ("what is it?", "is it old?", "is it tall?"):
        t.say(f"{q} {pics[0]}")
    llava = chat_loop.ctx.models.llava()
    n_new = chat_loop.ctx.config.active.vision.max_new_tokens
    question = "and the sky?"
    newest = [(e.question, e.answer) for e in t.chat.session.exchanges[-1:]]
    # the budget, counted by plain transformers (not by the estimator under test): the prompt
    # with the newest turn, as the processor expands it for the model, plus the answer
    from PIL import Image
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(llava.source)
    image = Image.open(pics[0]).convert("RGB")
    room = len(processor(images=[image], text=llava.build_prompt(question, 1, newest))["input_ids"][0])
    monkeypatch.setattr(type(llava), "context_length", property(lambda self: room + n_new))
    out, _ = t.say(question)
    result = t.chat.session.last_result
    assert result.ok and result.data["history_turns"] == 1
    assert "note: the 2 oldest turn(s) were left out to fit the model's context" in out


def test_numbering_it_and_references(talk, pics):
    out, _ = talk.say(f"/image {pics[0]}")
    assert out.strip() == f"#1 {pics[0]} (256x192)"
    talk.say(f"describe {pics[1]}")
    assert talk.chat.session.last_result.data["images"] == [pics[1]]
    talk.say("describe it")  # it = the most recent
    assert talk.chat.session.last_result.data["images"] == [pics[1]]
    talk.say("caption #1")
    assert talk.chat.session.last_result.data["images"] == [pics[0]]
    out, _ = talk.say("/images")
    assert out.splitlines() == [f"#1 {pics[0]} (256x192, you)", f"#2 {pics[1]} (256x192, you)"]


def test_a_bad_path_gets_one_line_and_the_chat_goes_on(talk, pics):
    out, err = talk.say("what's in ~/Downloads/receipt.jpg?")
    assert err == "error: ~/Downloads/receipt.jpg: file not found\n" and out == ""
    out, err = talk.say(f"/image {pics[0]}.missing.png")
    assert err.count("\n") == 1 and "file not found" in err
    out, err = talk.say(f"read the text in {pics[0]}")
    assert err == "" and talk.chat.session.last_result.tool == "read-text"


def test_words_from_an_image_never_route(talk, plugin):
    plugin.seen.clear()
    out, _ = talk.say("/parrot draw a red dragon")
    assert out.strip() == "draw a red dragon"
    talk.say("hello")
    # routers only ever saw the user's own lines, and nothing was drawn
    assert plugin.seen == ["/parrot draw a red dragon", "hello"]
    assert [t.tool for t in talk.chat.session.turns if t.role == "assistant"] == ["parrot"]


def test_ctrl_c_cancels_the_job_not_the_chat(talk, plugin, chat_loop):
    plugin.slow_stopped.clear()

    def interrupt():
        chat_loop.busy.wait(10)
        time.sleep(0.1)
        _thread.interrupt_main()  # what Ctrl-C does to the main thread

    threading.Thread(target=interrupt, daemon=True).start()
    started = time.monotonic()
    out, _ = talk.say("/slow --seconds 20")
    assert time.monotonic() - started < 10
    assert out.strip() == "cancelled" and plugin.slow_stopped.is_set()
    out, _ = talk.say("/slow --seconds 0.05")  # the next job runs normally
    assert out.strip() == "finished"


def test_help_reset_save_and_quit(talk, pics, tmp_path):
    out, _ = talk.say("/help")
    for cmd in ("/see", "/caption", "/read", "/draw", "/edit", "/restyle", "/run WORKFLOW", "/images",
                "/reset", "/save FILE", "/open #N", "/quit"):
        assert cmd in out, cmd
    assert "/parrot" in out and "/slow" in out  # plugin tools are commands too
    talk.say(f"describe {pics[0]}")
    out, _ = talk.say(f"/save {tmp_path / 'talk.txt'}")
    assert out.strip() == f"saved the transcript to {tmp_path / 'talk.txt'}"
    saved = (tmp_path / "talk.txt").read_text()
    assert f"> describe {pics[0]}" in saved and "[caption] " in saved
    out, err = talk.say("/save")
    assert err.strip() == "error: usage: /save FILE"
    talk.say("/reset")
    assert talk.chat.session.images == [] and talk.chat.session.exchanges == []
    out, _ = talk.say("describe it")
    assert "Which image?" in out
    assert talk.chat.handle("/quit") is False and talk.chat.handle("/exit") is False


@pytest.mark.parametrize("line", ["help", "what can you do?", "Help!", "please help"])
def test_help_in_words_shows_the_help(talk, plugin, line):
    plugin.seen.clear()
    out, err = talk.say(line)
    assert err == "" and "/run WORKFLOW" in out and "/draw PROMPT" in out
    assert plugin.seen == []  # answered by the chat, not sent to a router (or to LLaVA)


def test_slash_tools_see_caption_read(talk, pics):
    talk.say(f"/image {pics[0]}")
    for line, tool in (("/see what is this?", "see"), ("/caption --detail long", "caption"),
                       (f"/read {pics[1]}", "read-text")):
        out, err = talk.say(line)
        result = talk.chat.session.last_result
        assert result.tool == tool and result.ok and err == "", (line, err)
    data = talk.chat.session.last_result.data  # OCR engines record "image", LLaVA "images"
    assert data.get("images", [data.get("image")]) == [pics[1]]
    _, err = talk.say("/see --max-new-tokens 0 what?")
    assert "max_new_tokens: must be at least 1" in err


def test_json_lines_have_the_one_shot_shape(chat_loop, pics):
    t = Talk(chat_loop, json_mode=True)
    t.say(f"describe {pics[0]}")
    t.say("nonsense words")
    t.say("what's in gone.png?")
    lines = [json.loads(line) for line in t.out.getvalue().splitlines()]
    assert [set(obj) for obj in lines] == [{"tool", "text", "images", "data", "error"}] * 3
    assert lines[0]["tool"] == "caption" and lines[0]["error"] is None and lines[0]["data"]["model"]
    assert lines[1]["tool"] is None and lines[1]["data"]["kind"] == "question"
    assert lines[2]["error"] == "gone.png: file not found"


def test_run_workflow_uses_the_current_image(talk, pics):
    talk.say(f"/image {pics[0]}")
    out, err = talk.say("/run alt-text")
    assert err == "", err
    assert out.startswith("workflow alt-text: ok (") and "alt:" in out
    _, err = talk.say("/run no-such-workflow")
    assert err.startswith("error: ") and err.count("\n") == 1
    _, err = talk.say("/run alt-text image")
    assert "expected name=value" in err


def test_run_takes_the_cli_syntax_and_dry_run(talk, pics, chat_loop):
    talk.say(f"/image {pics[0]}")
    before = sorted(p.name for p in chat_loop.ctx.out_dir.iterdir()) if chat_loop.ctx.out_dir.exists() else []
    out, err = talk.say("/run poster --input subject=cat -i seed=3 --dry-run")
    assert err == "", err
    assert out.startswith("workflow poster (") and "input subject = 'cat'" in out and "input seed = 3" in out
    assert "step draw: draw" in out and "writes a new run folder under" in out
    # a dry run writes nothing and adds no image
    after = sorted(p.name for p in chat_loop.ctx.out_dir.iterdir()) if chat_loop.ctx.out_dir.exists() else []
    assert after == before and len(talk.chat.session.images) == 1
    out, err = talk.say("/run --dry-run poster subject=dog")  # the bare form and the flag anywhere
    assert err == "" and "input subject = 'dog'" in out
    _, err = talk.say("/run poster --dry-run")
    assert "input 'subject' is required" in err and err.count("\n") == 1
    _, err = talk.say("/run poster --input")
    assert "--input needs NAME=VALUE" in err
    _, err = talk.say("/run poster --input subject")
    assert "expected name=value" in err and "'subject'" in err
    _, err = talk.say("/run poster -i subject=a subject=b --dry-run")
    assert "given twice" in err
    # a real run with --input naming an image by number (not the current one, #2)
    talk.say(f"/image {pics[1]}")
    out, err = talk.say("/run alt-text --input image=#1")
    assert err == "" and out.startswith("workflow alt-text: ok (")
    manifest = json.loads((Path(out.split("(", 1)[1].split(")", 1)[0]) / "manifest.json").read_text())
    assert manifest["inputs"]["image"]["value"] == str(Path(pics[0]).resolve())


def test_run_workflow_as_json(chat_loop, pics):
    t = Talk(chat_loop, json_mode=True)
    t.say(f"/image {pics[0]}")
    t.say("/run alt-text")
    run = json.loads(t.out.getvalue().splitlines()[-1])
    assert {"workflow", "status", "outputs", "steps", "manifest"} <= set(run)
    assert run["workflow"] == "alt-text" and run["status"] == "ok"
    assert [s["id"] for s in run["steps"]][:2] == ["describe", "read"]


class BrokenRouter:
    @hookimpl
    def route_message(self, message, session, tools):
        raise RuntimeError("router exploded")


def test_a_router_plugin_that_raises_gets_one_line_and_the_chat_goes_on(talk, chat_loop, caplog):
    broken = BrokenRouter()
    chat_loop.registry.pm.register(broken, name="broken-router")
    try:
        with caplog.at_level("INFO", logger="visionloop.chat.engine"):
            out, err = talk.say("hello there")
    finally:
        chat_loop.registry.pm.unregister(broken)
    assert out == "" and err == "error: router plugin failed: RuntimeError: router exploded\n"
    # -v (INFO) shows where it broke
    assert any(r.exc_info and "router exploded" in str(r.exc_info[1]) for r in caplog.records)
    out, err = talk.say("/parrot still here")
    assert out.strip() == "still here" and err == ""
