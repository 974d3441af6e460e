"""The built-in planner: a message that chains requests becomes a `Plan`, a small workflow.

"describe this photo, then paint it as a watercolour and read me any text on it" is split
(`visionloop.chat.splitter`) into parts; each part goes through the same intent rules as a single
message (`visionloop.chat.router.route_words`), read against a *planning session* whose pictures
are workflow references: the attached image is `${inputs.image}` (other images `${inputs.image_N}`),
and a picture a step will make is `${steps.ID.image}`, so "it" after "draw a lighthouse" means the
lighthouse. A text a step will give flows into a later step's argument slot only: a restyle after a
description gets `prompt: ${steps.describe.text}`, "draw that" gets the description as its prompt.

Nothing a step returns is ever read as a request: the plan is made from what the user typed,
before anything runs, and results only fill the slots the plan gave them.

A part no rule places is kept as an unplaced step (`tool` None); the chat asks the vision model's
language model to choose for it (`visionloop.chat.model_choice`), or asks the user back.

The plan is the workflow format (`visionloop.workflows.schema`): `Plan.workflow()` is the dict that
`visionloop validate` checks and `visionloop run` runs.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from visionloop.chat.phrases import DRAW, clean
from visionloop.chat.session import Picture, Session
from visionloop.chat.splitter import split_message
from visionloop.errors import VisionloopError
from visionloop.hookspecs import hookimpl
from visionloop.tools import Tool, ToolCall

#: step ids by tool, for plans that read well (`${steps.describe.text}`)
STEP_NAMES = {"caption": "describe", "see": "ask", "read-text": "read", "draw": "draw", "edit": "edit",
              "restyle": "restyle"}
_REF = re.compile(r"\$\{inputs\.(?P<name>[A-Za-z_][A-Za-z0-9_-]*)\}")
_THAT = re.compile(r"\b(?:it|that|this|the\s+description|the\s+caption|the\s+answer|what\s+you\s+(?:saw|see|said))\b",
                   re.IGNORECASE)


@dataclass
class PlanStep:
    """One step: the part of the message it came from, its tool and arguments (values may be
    `${...}` references), and how it was placed (`routed_by`: "rules" or "model", with the scores)."""

    id: str
    part: str
    tool: str | None
    args: dict[str, Any] = field(default_factory=dict)
    routed_by: str = "rules"
    scores: dict[str, Any] = field(default_factory=dict)


@dataclass
class Plan:
    """What a message asks for, as workflow steps; `images` maps each image input to its path now."""

    message: str
    steps: list[PlanStep]
    images: dict[str, str] = field(default_factory=dict)
    name: str = "chat-plan"
    tools: dict[str, Tool] | None = field(default=None, repr=False)  # for the steps that take a seed
    #: the seed of every step that takes one (drawn when the plan is made; a saved plan keeps it as the
    #: `seed` input's default, so a rerun on the same picture gives the same result)
    seed: int = field(default_factory=lambda: random.SystemRandom().randrange(2**31))

    @property
    def unplaced(self) -> list[PlanStep]:
        return [s for s in self.steps if s.tool is None]

    def used_images(self) -> dict[str, str]:
        """The image inputs the steps use, with the paths they have now."""
        used = {m.group("name") for s in self.steps for v in s.args.values() for m in _REF.finditer(_text(v))}
        return {name: path for name, path in self.images.items() if name in used}

    def workflow(self) -> dict:
        """The plan as a workflow file's contents (every step's results become outputs)."""
        inputs = {name: {"type": "image", "description": "the picture attached when the plan was made"}
                  for name in self.used_images()}
        steps = [{"id": s.id, "tool": s.tool, "description": f"{s.part} (routed by {s.routed_by})"[:200],
                  "with": dict(s.args)} for s in self.steps]
        if self.tools is not None and any(self._seeded(s) for s in self.steps):
            inputs["seed"] = {"type": "int", "default": self.seed, "min": 0, "description": "the same seed, the same result"}
            for step, s in zip(steps, self.steps):
                if self._seeded(s):
                    step["with"]["seed"] = "${inputs.seed}"
        outputs: dict[str, str] = {}
        for s in self.steps:
            outputs[s.id] = f"${{steps.{s.id}.images}}" if s.tool in ("draw", "edit", "restyle") \
                else f"${{steps.{s.id}.text}}"
        return {"name": self.name, "description": f"planned in the chat from: {self.message}"[:300],
                "inputs": inputs,
                "steps": steps, "outputs": outputs}

    def _seeded(self, step: PlanStep) -> bool:
        tool = self.tools.get(step.tool) if step.tool else None
        return tool is not None and tool.input("seed") is not None and "seed" not in step.args

    def yaml(self) -> str:
        return yaml.safe_dump(self.workflow(), sort_keys=False, allow_unicode=True, width=100)

    def to_json(self) -> dict:
        """`{"plan": {"steps": [...]}, "workflow_yaml": "..."}`: what `chat --json` prints before running."""
        written = {s["id"]: s["with"] for s in self.workflow()["steps"]}
        steps = [{"id": s.id, "tool": s.tool, "with": written.get(s.id, dict(s.args)), "from": s.part, "routed_by": s.routed_by,
                  **({"scores": s.scores} if s.scores else {})} for s in self.steps]
        return {"plan": {"steps": steps, "inputs": self.used_images()}, "workflow_yaml": self.yaml()}


def _text(value: Any) -> str:
    return " ".join(map(str, value)) if isinstance(value, list) else str(value)


# --- the hook ----------------------------------------------------------------------------------

@hookimpl(trylast=True)
def plan_message(message, session, tools):
    if message.strip().startswith("/"):
        return None
    return make_plan(message, session, tools)


def ensure_registered(pm) -> None:
    """Register the built-in planner (once); `trylast` keeps plugins' planners ahead of it."""
    import visionloop.chat.planner as me

    if not pm.is_registered(me):
        pm.register(me, name="visionloop-planner")


def make_plan(message: str, session: Session, tools: dict[str, Tool], always: bool = False) -> Plan | str | None:
    """A `Plan` for a message that chains requests (with `always`, for one request too), a question
    back (str) when a part names no image or is missing something, or None for a single request."""
    parts = split_message(message)
    if not parts or (len(parts) < 2 and not always):
        return None
    shadow, images = _planning_session(session)
    steps: list[PlanStep] = []
    for part in parts:
        step = _place(part, shadow, tools, steps)
        if isinstance(step, str):
            return f"in '{part}': {step}"
        steps.append(step)
        tool = tools.get(step.tool) if step.tool else None
        if tool is not None and (tool.returns_images or step.tool in ("draw", "edit", "restyle")):
            size = shadow.current.size if shadow.current else (512, 512)
            shadow.images.append(Picture(len(shadow.images) + 1, f"${{steps.{step.id}.image}}", size, step.tool))
    return Plan(message, steps, images, tools=tools)


def _planning_session(session: Session) -> tuple[Session, dict[str, str]]:
    """A copy of the session whose pictures are the workflow's image inputs."""
    shadow = Session(check_image=session._check_image)
    images: dict[str, str] = {}
    current = session.current
    for pic in session.images:
        name = "image" if pic is current else f"image_{pic.number}"
        images[name] = pic.path
        shadow.images.append(Picture(pic.number, f"${{inputs.{name}}}", pic.size, pic.source))
    shadow.last_box = session.last_box
    return shadow, images


def _step_id(tool: str | None, steps: list[PlanStep]) -> str:
    base = STEP_NAMES.get(tool or "", re.sub(r"[^A-Za-z0-9_]", "_", tool or "step"))
    taken = {s.id for s in steps}
    if base not in taken:
        return base
    n = 2
    while f"{base}_{n}" in taken:
        n += 1
    return f"{base}_{n}"


def _last_text(steps: list[PlanStep]) -> PlanStep | None:
    """The latest step that gives a description (caption or see), for a later prompt slot."""
    return next((s for s in reversed(steps) if s.tool in ("caption", "see")), None)


def _place(part: str, shadow: Session, tools: dict[str, Tool], steps: list[PlanStep]) -> PlanStep | str:
    from visionloop.chat.router import route_words

    try:
        answer = route_words(part, shadow, tools)
    except VisionloopError as exc:
        return str(exc)
    described = _last_text(steps)
    if isinstance(answer, ToolCall):
        args = dict(answer.args)
        tool = tools[answer.tool]
        # a description given earlier is what the redraw shows (the text goes into the slot, never read)
        if answer.tool == "draw" and described is not None and _THAT.match(str(args.get("prompt", ""))):
            rest = clean(_THAT.sub("", str(args["prompt"]), count=1))  # "draw that as a cartoon"
            args["prompt"] = f"${{steps.{described.id}.text}}" + (f", {rest}" if rest else "")
        if answer.tool == "read-text" and shadow.images and "image" in args:
            # text is read from the user's picture, not from a redraw of it (unless only a drawing exists)
            user = next((p.path for p in reversed(shadow.images) if p.path.startswith("${inputs.")), None)
            if user is not None and not re.search(r"\b(?:new|result|drawing|painting|redraw|#\d+)\b", part, re.IGNORECASE):
                args["image"] = [user] if isinstance(args["image"], list) else user
        if answer.tool == "restyle" and described is not None and tool.input("prompt") is not None \
                and "prompt" not in args:
            args["prompt"] = f"${{steps.{described.id}.text}}"
        return PlanStep(_step_id(answer.tool, steps), part, answer.tool, args)
    drawn = DRAW.match(part.strip())
    if drawn and described is not None and "draw" in tools and _THAT.search(part):
        # "draw that as a cartoon": the description is the prompt
        rest = clean(_THAT.sub("", drawn.group("p"), count=1))
        prompt = f"${{steps.{described.id}.text}}" + (f", {rest}" if rest else "")
        return PlanStep(_step_id("draw", steps), part, "draw", {"prompt": prompt})
    if answer.startswith("I'm not sure"):  # no rule placed it: the model may choose
        return PlanStep(_step_id(None, steps), part, None)
    return answer
