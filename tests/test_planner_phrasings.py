"""The built-in planner on compound and unusual phrasings: each message and the plan it must give.

A plan is written `tool(image, arg=value, ...) | ...`: `@` is the picture attached when the plan
was made (`${inputs.image}`), `@1` another attached picture by number, `@STEP` a picture a
earlier step makes; `detail=short` (the caption's default) is left out. Two pictures are in
the chat (#1 and #2, #2 the latest). No model runs here."""

from __future__ import annotations

import pytest
from visionloop.chat.planner import Plan, make_plan
from visionloop.chat.session import Picture, Session
from visionloop.chat.splitter import split_message

PLANS = [
    ('describe this photo, then paint it as a watercolour and read me any text on it',
     'caption(@) | restyle(@, style=a watercolour, prompt=${steps.describe.text}) | read-text(@)'),
    ('describe it then make it look like a watercolour',
     'caption(@) | restyle(@, style=a watercolour, prompt=${steps.describe.text})'),
    ('describe it and then read the text',
     'caption(@) | read-text(@)'),
    ('caption it; read the text',
     'caption(@) | read-text(@)'),
    ('read the text, then describe it',
     'read-text(@) | caption(@)'),
    ('1. describe it 2. read the text',
     'caption(@) | read-text(@)'),
    ('1) read the text 2) make it black and white',
     'read-text(@) | restyle(@, style=black and white)'),
    ('step 1: caption it step 2: read the text',
     'caption(@) | read-text(@)'),
    ('- describe it - read the text',
     'caption(@) | read-text(@)'),
    ('describe it. After that, make it look like a Van Gogh',
     'caption(@) | restyle(@, style=a Van Gogh, prompt=${steps.describe.text})'),
    ('draw a lighthouse and then describe it',
     'draw(prompt=a lighthouse) | caption(@draw)'),
    ('draw a lighthouse, then make it look like an oil painting',
     'draw(prompt=a lighthouse) | restyle(@draw, style=an oil painting)'),
    ('draw a red fox then read the text',
     'draw(prompt=a red fox) | read-text(@)'),
    ('draw a cat; draw a dog',
     'draw(prompt=a cat) | draw(prompt=a dog)'),
    ('generate a castle at night, then turn it into a pixel art',
     'draw(prompt=a castle at night) | restyle(@draw, style=a pixel art)'),
    ('describe it then draw that as a cartoon',
     'caption(@) | draw(prompt=${steps.describe.text}, as a cartoon)'),
    ('describe it in detail, then read the text',
     'caption(@, detail=long) | read-text(@)'),
    ('first describe it, then read the text',
     'caption(@) | read-text(@)'),
    ('what is in this picture? then read the text',
     'see(@, question=what is in this picture?) | read-text(@)'),
    ('what colour is the car and what does it say?',
     'see(@, question=what colour is the car) | read-text(@)'),
    ('describe it and read me any text on it',
     'caption(@) | read-text(@)'),
    ('make it look like a watercolour and then describe it',
     'restyle(@, style=a watercolour) | caption(@restyle)'),
    ('turn it into an anime drawing then read the text',
     'restyle(@, style=an anime drawing) | read-text(@)'),
    ('make it black and white, then make it look like a pencil sketch',
     'restyle(@, style=black and white) | restyle(@restyle, style=a pencil sketch)'),
    ('put a red hat in the top left, then describe it',
     'edit(@, prompt=a red hat, box=0,0,32,32) | caption(@edit)'),
    ('add a bird in the top right and then make it look like a watercolour',
     'edit(@, prompt=a bird, box=32,0,64,32) | restyle(@edit, style=a watercolour)'),
    ('read the text; describe it; make it look like a watercolour',
     'read-text(@) | caption(@) | restyle(@, style=a watercolour, prompt=${steps.describe.text})'),
    ('please describe it and then make it look like a watercolour',
     'caption(@) | restyle(@, style=a watercolour, prompt=${steps.describe.text})'),
    ('could you describe it, then make it look like a watercolour?',
     'caption(@) | restyle(@, style=a watercolour, prompt=${steps.describe.text})'),
    ('caption it, and then draw that in the style of Monet',
     'caption(@) | draw(prompt=${steps.describe.text}, in the style of Monet)'),
    ('transcribe it then describe it',
     'read-text(@) | caption(@)'),
    ('describe #1 then read the text in #2',
     'caption(@1) | read-text(@)'),
    ('describe it; then read the text',
     'caption(@) | read-text(@)'),
    ('describe it; after that, read the text',
     'caption(@) | read-text(@)'),
    ('describe it, afterwards read the text',
     'caption(@) | read-text(@)'),
    ('caption it and read the text',
     'caption(@) | read-text(@)'),
    ('summarise it then read the text',
     'caption(@) | read-text(@)'),
    ('write alt text for it and read the text',
     'caption(@) | read-text(@)'),
    ('give it a vintage look and then describe it',
     'restyle(@, style=vintage) | caption(@restyle)'),
    ('make it look older then read the text',
     'restyle(@, style=an old vintage photo) | read-text(@)'),
    ('read the text and then make it look like a comic',
     'read-text(@) | restyle(@, style=a comic)'),
    ('describe it then restyle it as a watercolour',
     'caption(@) | restyle(@, style=a watercolour, prompt=${steps.describe.text})'),
    ('draw a lighthouse at dusk; make it look like a watercolour; describe it',
     'draw(prompt=a lighthouse at dusk) | restyle(@draw, style=a watercolour) | caption(@restyle)'),
    ('1. draw a cat 2. make it look like a watercolour 3. describe it',
     'draw(prompt=a cat) | restyle(@draw, style=a watercolour) | caption(@restyle)'),
    ('describe the colours, then read the text',
     'see(@, question=describe the colours) | read-text(@)'),
    ('how many people are there? then describe it',
     'see(@, question=how many people are there?) | caption(@)'),
    ('describe it then make it sepia',
     'caption(@) | restyle(@, style=sepia, prompt=${steps.describe.text})'),
    ('draw a mountain lake then describe it in detail',
     'draw(prompt=a mountain lake) | caption(@draw, detail=long)'),
    ('read the text then make it look like a neon sign',
     'read-text(@) | restyle(@, style=a neon sign)'),
    ('describe it; apply a vintage filter',
     'caption(@) | restyle(@, style=vintage, prompt=${steps.describe.text})'),
    ('describe it then add a sun in the top left',
     'caption(@) | edit(@, prompt=a sun, box=0,0,32,32)'),
    ('describe it, then draw that as an oil painting',
     'caption(@) | draw(prompt=${steps.describe.text}, as an oil painting)'),
    ('describe this photo and then paint it as a watercolour',
     'caption(@) | restyle(@, style=a watercolour, prompt=${steps.describe.text})'),
    ('caption it then what does it say?',
     'caption(@) | read-text(@)'),
    ('draw an owl and then draw a bat',
     'draw(prompt=an owl) | draw(prompt=a bat)'),
    ('make it look like a watercolour, then read the text',
     'restyle(@, style=a watercolour) | read-text(@)'),
    ('describe it then make it look like winter',
     'caption(@) | restyle(@, style=winter, prompt=${steps.describe.text})'),
    ('read the text, then describe it, then make it look like a watercolour',
     'read-text(@) | caption(@) | restyle(@, style=a watercolour, prompt=${steps.describe.text})'),
    ('describe it. Then read the text.',
     'caption(@) | read-text(@)'),
    ('draw 2 pictures of owls then describe it',
     'draw(prompt=owls, count=2) | caption(@draw)'),
]

#: single requests stay with the router: no plan
SINGLE = ["describe it", "make it black and white", "draw a cat and a dog", "put a bird next to the tree",
          "draw a lighthouse at dusk, then", "read the text please", "what's in it?"]


def written(plan: Plan) -> str:
    out = []
    for step in plan.steps:
        args = {k: v for k, v in step.args.items() if not (k == "detail" and v == "short")}
        image = args.pop("image", None)
        image = image[0] if isinstance(image, list) else image
        parts = [] if image is None else [{"${inputs.image}": "@", "${inputs.image_1}": "@1"}.get(
            image, image.replace("${steps.", "@").replace(".image}", ""))]
        parts += [f"{k}={v}" for k, v in args.items()]
        out.append(f"{step.tool}({', '.join(parts)})")
    return " | ".join(out)


def session() -> Session:
    s = Session(check_image=lambda path: (64, 64))
    s.images += [Picture(1, "/pics/one.png", (64, 64)), Picture(2, "/pics/two.png", (64, 64))]
    return s


def test_sixty_phrasings():
    assert len(PLANS) == 60 and len({m for m, _ in PLANS}) == 60


@pytest.mark.parametrize("message, expected", PLANS, ids=[m[:40] for m, _ in PLANS])
def test_phrasing_gives_its_plan(message, expected, registry):
    plan = make_plan(message, session(), registry.tools)
    assert isinstance(plan, Plan), plan
    assert written(plan) == expected
    assert all(s.routed_by == "rules" for s in plan.steps)


@pytest.mark.parametrize("message", SINGLE)
def test_a_single_request_is_no_plan(message, registry):
    assert make_plan(message, session(), registry.tools) is None


def test_every_plan_is_a_valid_workflow(registry, tiny_config):
    from visionloop.workflows import check_text

    for message, _ in PLANS:
        plan = make_plan(message, session(), registry.tools)
        spec, problems = check_text(plan.yaml(), message, registry, tiny_config)
        assert not problems, (message, [str(p) for p in problems])
        assert set(spec.inputs) - {"seed"} == set(plan.used_images())


def test_the_plan_json_object(registry):
    plan = make_plan("describe it, then make it look like a watercolour", session(), registry.tools)
    data = plan.to_json()
    assert set(data) == {"plan", "workflow_yaml"}
    assert [s["tool"] for s in data["plan"]["steps"]] == ["caption", "restyle"]
    assert data["plan"]["steps"][1]["with"]["prompt"] == "${steps.describe.text}"
    assert data["plan"]["inputs"] == {"image": "/pics/two.png"}
    assert "${steps.describe.text}" in data["workflow_yaml"]


def test_a_part_with_no_picture_asks_back(registry):
    answer = make_plan("describe it, then read the text", Session(check_image=lambda p: (64, 64)), registry.tools)
    assert isinstance(answer, str) and "describe it" in answer and "image" in answer.lower()


def test_a_part_no_rule_places_is_left_to_the_model(registry):
    plan = make_plan("describe it, then frobnicate the wibble", session(), registry.tools)
    assert [s.tool for s in plan.steps] == ["caption", None]
    assert plan.unplaced[0].part == "frobnicate the wibble"


@pytest.mark.parametrize("message, parts", [
    ("describe it and then read the text", ["describe it", "read the text"]),
    ("make it black and white", ["make it black and white"]),
    ("1. describe it\n2. read the text\n3. draw a fox", ["describe it", "read the text", "draw a fox"]),
    ("put a bird next to the tree", ["put a bird next to the tree"]),
    ("draw a boat at 2.5 metres then describe it", ["draw a boat at 2.5 metres", "describe it"]),
])
def test_splitter(message, parts):
    assert split_message(message) == parts
