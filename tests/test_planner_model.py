"""The model chooses for the steps no rule places: constrained to the registered tools and their
allowed values. Transformers: log-likelihood scores, checked against a plain forward pass; the
tiny model's choices are random, so only their validity is asserted, and the threshold path asks
back. Servers: JSON-schema output restricted to the allowed values (the fake Ollama and OpenAI)."""

from __future__ import annotations

import pytest
from chat_fixtures import Talk
from remote_vision_helpers import fake, make_loop, vision_section, write_config  # noqa: F401  (fixtures)
from visionloop.chat.model_choice import choose
from visionloop.chat.planner import _planning_session, make_plan
from visionloop.chat.session import Picture, Session
from visionloop.config_schema import PlanSettings
from visionloop.models.choice_scoring import (
    ASK_BACK,
    choice_prompt,
    probabilities,
    score_choices,
)
from visionloop.workflows import check_text

pytestmark = pytest.mark.usefixtures("one_torch_thread")
UNPLACED = ["could you sort of wintrify the thing", "frobnicate the wibble", "do the usual magic",
            "zhuzh it up a bit", "something nice with the colours maybe"]


@pytest.fixture(scope="module")
def backend(chat_loop):
    return chat_loop.submit(lambda ctx: ctx.models.llava()).result()


def one_picture() -> Session:
    s = Session(check_image=lambda p: (64, 64))
    s.images.append(Picture(1, "/pics/one.png", (64, 64)))
    return s


def test_scores_match_a_plain_forward_pass(backend):
    import torch

    tok, model = backend.processor.tokenizer, backend.model
    prompt = backend.build_prompt(choice_prompt("make it wintry", {"caption": "describe", "restyle": "redraw"}, [1]), 0)
    choices = ["caption", "restyle", "read-text"]
    scores = score_choices(model, tok, prompt, choices)
    for choice in choices:
        p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
        if tok.bos_token_id is not None and p_ids[:1] != [tok.bos_token_id]:
            p_ids = [tok.bos_token_id] + p_ids
        c_ids = tok(" " + choice, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([p_ids + c_ids])).logits[0]
        total = sum(torch.log_softmax(logits[len(p_ids) - 1 + j].float(), -1)[t].item() for j, t in enumerate(c_ids))
        assert scores[choice] == pytest.approx(total, abs=1e-4)
    assert sum(probabilities(scores).values()) == pytest.approx(1.0)


@pytest.mark.parametrize("part", UNPLACED)
def test_the_model_always_gives_a_registered_tool_with_valid_arguments(part, backend, registry, tiny_config):
    shadow, _ = _planning_session(one_picture())
    got = choose(backend, part, registry.tools, shadow, threshold=0.0)
    assert got.call is not None and got.call.tool in registry.tools
    assert got.scores["method"] == "log-likelihood" and got.scores["chosen"] == got.call.tool
    assert set(got.scores["tool"]) <= set(registry.tools)
    plan = make_plan(f"describe it, then {part}", one_picture(), registry.tools)
    step = plan.unplaced[0]
    step.tool, step.args, step.routed_by = got.call.tool, dict(got.call.args), "model"
    _, problems = check_text(plan.yaml(), part, registry, tiny_config)
    assert not problems, [str(p) for p in problems]


def test_below_the_threshold_it_asks_back(backend, registry):
    shadow, _ = _planning_session(one_picture())
    got = choose(backend, "frobnicate the wibble", registry.tools, shadow, threshold=1.0)
    assert got.call is None and got.scores["chosen"] == ASK_BACK


def test_in_the_chat_the_model_step_records_routed_by_and_scores(chat_loop, example_image):
    talk = Talk(chat_loop, json_mode=True)
    talk.say(f"/image {example_image}")
    talk.chat.config = talk.chat.config.model_copy(update={"plan": PlanSettings(min_confidence=0.0)})
    out, _ = talk.say("/plan describe it, then frobnicate the wibble")
    import json

    steps = json.loads(out.splitlines()[0])["plan"]["steps"]
    assert steps[0]["routed_by"] == "rules" and steps[1]["routed_by"] == "model"
    assert steps[1]["tool"] in chat_loop.registry.tools and "tool" in steps[1]["scores"]
    talk.chat.config = talk.chat.config.model_copy(update={"plan": PlanSettings(min_confidence=1.0)})
    out, _ = talk.say("/plan describe it, then frobnicate the wibble")
    assert "not sure which tool" in out


@pytest.mark.parametrize("kind", ["ollama", "openai"])
def test_servers_choose_through_a_json_schema(kind, fake, tiny_cache, tmp_path, registry):  # noqa: F811
    loop = make_loop(write_config(tmp_path, tiny_cache, vision_section(kind, fake)), registry, tmp_path / "out")
    try:
        remote = loop.submit(lambda ctx: ctx.models.llava()).result()
        shadow, _ = _planning_session(one_picture())
        fake.picks = {"tool": "caption", "detail": "long"}
        got = choose(remote, "give me the gist", registry.tools, shadow, threshold=0.5)
        assert got.call.tool == "caption" and got.call.args["detail"] == "long"
        assert got.call.args["image"] == ["${inputs.image}"] and got.scores["method"] == "json-schema"
        body = fake.chats()[0]["body"]
        schema = body["format"] if kind == "ollama" else body["response_format"]["json_schema"]["schema"]
        assert set(schema["properties"]["tool"]["enum"]) == {*registry.tools, ASK_BACK} - {"train-lora"}
        fake.picks = {"tool": ASK_BACK}
        assert choose(remote, "hm", registry.tools, shadow, threshold=0.5).call is None
        fake.picks = {"tool": "rm -rf /"}  # a server that ignored the schema: never a tool that is not there
        assert choose(remote, "hm", registry.tools, shadow, threshold=0.5).call is None
    finally:
        loop.close()
