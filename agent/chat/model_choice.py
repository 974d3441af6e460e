"""The model picks a tool for a part of a plan that no rule placed ("give this a more wintry feel").

The vision model's language model is given the part (the user's words only), the tools' names
with their one-line descriptions and the images' numbers, and chooses among closed lists: first
the tool, then each of its arguments that is a choice (`visionloop.models.choice_scoring`). With
the transformers backend each allowed value is scored by log-likelihood and the best one wins
unless its share of the probability is below `plan.min_confidence` (then the chat asks back); a
server answers through a JSON schema restricted to the allowed values (and `ask-back`). The
user's words then fill the tool's main text slot (`fill`), so the call always names a registered
tool with valid arguments. The step records `routed_by: model` and the scores.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from visionloop.chat.slash_commands import fill
from visionloop.tools import Tool, ToolCall
from visionloop.values import coerce_value

ASK = "I'm not sure which tool you mean in '{part}'. Say e.g. 'describe it', 'read the text', 'draw ...' or " \
      "'make it look like ...'."


@dataclass
class Choice:
    """What the model chose: a call (None when it asks back) and the scores it chose by."""

    call: ToolCall | None
    scores: dict = field(default_factory=dict)


def min_confidence(config) -> float:
    plan = getattr(config, "plan", None)
    return float(getattr(plan, "min_confidence", 0.5)) if plan is not None else 0.5


def choose(backend, part: str, tools: dict[str, Tool], session, threshold: float) -> Choice:
    """A registered tool with valid arguments for `part`, or no call (ask back)."""
    from visionloop.models.choice_scoring import (
        ASK_BACK,
        choice_prompt,
        probabilities,
        score_choices,
        structured_choice,
    )

    names = sorted(t for t in tools if t != "train-lora")
    described = {n: tools[n].description for n in names}
    numbers = [p.number for p in session.images]
    prompt = choice_prompt(part, described, numbers)
    remote = backend.backend != "transformers"
    scores: dict = {"method": "json-schema" if remote else "log-likelihood"}
    if remote:
        picked = structured_choice(backend, prompt, {"tool": names + [ASK_BACK]})
        name = picked["tool"]
        scores["tool"] = {"chosen": name}
        if name is None or name == ASK_BACK:
            return Choice(None, scores)
    else:
        templated = backend.build_prompt(prompt, 0)
        tool_scores = score_choices(backend.model, backend.processor.tokenizer, templated, names)
        share = probabilities(tool_scores)
        name = max(share, key=share.get)
        scores["tool"] = {k: round(v, 4) for k, v in tool_scores.items()}
        scores["probability"] = round(share[name], 4)
        scores["threshold"] = threshold
        if share[name] < threshold:
            scores["chosen"] = ASK_BACK
            return Choice(None, scores)
    scores["chosen"] = name
    tool = tools[name]
    args: dict = {}
    for inp in tool.inputs:
        if inp.type != "choice" or not inp.choices:
            continue
        allowed = [str(c) for c in inp.choices]
        slot_prompt = choice_prompt(part, described, numbers, slot=inp.name, allowed=allowed) + f"\nTool: {name}"
        if remote:
            value = structured_choice(backend, slot_prompt, {inp.name: allowed})[inp.name]
            scores[inp.name] = {"chosen": value}
        else:
            slot_scores = score_choices(backend.model, backend.processor.tokenizer,
                                        backend.build_prompt(slot_prompt, 0), allowed)
            value = max(slot_scores, key=slot_scores.get)
            scores[inp.name] = {k: round(v, 4) for k, v in slot_scores.items()}
        if value is not None:
            args[inp.name] = coerce_value(inp, value)
    call = fill(tool, args, [], part, session)  # the user's words go to the tool's main text slot
    if not isinstance(call, ToolCall):  # a tool with no text slot (caption): the words were only the request
        call = fill(tool, args, [], "", session)
    return Choice(call if isinstance(call, ToolCall) else None, scores)


def choose_unplaced(chat, plan) -> bool:
    """Place every step no rule placed, on the chat's loop; False (having asked back) when one stays unclear."""
    from visionloop.chat.planner import _planning_session, _step_id

    threshold = min_confidence(chat.config)
    tools = chat.registry.tools
    for step in plan.unplaced:
        shadow, _ = _planning_session(chat.session)
        got = chat.wait(chat.submit(lambda ctx, part=step.part, shadow=shadow: choose(
            ctx.models.llava(), part, tools, shadow, threshold), stream=False))
        if got is None:  # cancelled
            return False
        if got.call is None:
            chat._say(ASK.format(part=step.part), "question")
            return False
        others = [s for s in plan.steps if s is not step]
        step.tool, step.args, step.routed_by, step.scores = got.call.tool, dict(got.call.args), "model", got.scores
        step.id = _step_id(step.tool, others)
    return True
