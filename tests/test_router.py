"""The built-in router: a table of phrasings -> tools (add to it whenever a phrasing is
mis-routed), regions and ambiguity. Explicit /tool commands: test_router_commands.py; the hook
order and plugins' own rules: test_chat_router_hook.py."""

from __future__ import annotations

import pytest

from visionloop.chat.router import REGIONS, RULES, route, wants_help
from visionloop.chat.rules import Request, first_match
from visionloop.chat.session import Session
from visionloop.tools import ToolCall

# phrase -> (tool, expected arguments that must be present with these values)
# "#1"/"#2" in the expectations stand for the path of that image.
ROUTES = [
    # questions -> see
    ("what is in this picture?", "see", {"question": "what is in this picture?", "image": ["#2"]}),
    ("what colour is the sky?", "see", {"image": ["#2"]}),
    ("and what colour is it?", "see", {"question": "and what colour is it?"}),
    ("how many boats are there", "see", {}),
    ("is it sunny?", "see", {}),
    ("Who painted this?", "see", {}),
    ("can you tell me what's happening here?", "see", {}),
    ("compare #1 and #2", "see", {"question": "compare image 1 and image 2", "image": ["#1", "#2"]}),
    ("where was #1 taken?", "see", {"question": "where was this image taken?", "image": ["#1"]}),
    ("describe the lighthouse's colours", "see", {"question": "describe the lighthouse's colours"}),
    ("tell me about the weather in it", "see", {}),
    ("do you see a boat", "see", {"question": "do you see a boat"}),
    ("does it have a sail", "see", {}),
    ("is there a dog", "see", {}),
    ("can you see a lighthouse", "see", {}),
    ("are the lights on", "see", {}),
    ("do the thing?", "see", {}),
    ("what's going on here?", "see", {}),
    ("how old is the man?", "see", {}),
    ("any people in it?", "see", {}),
    ("anything unusual?", "see", {}),
    ("tell me what you see", "see", {}),
    ("count the birds", "see", {}),
    ("what's happening in the top left?", "see", {}),
    ("guess where this was taken", "see", {"question": "guess where this was taken"}),
    ("do you recognise this place?", "see", {}),
    ("what's in this picture?", "see", {}),
    ("describe it in one sentence", "see", {}),
    # describe / caption -> caption
    ("describe it", "caption", {"detail": "short", "image": ["#2"]}),
    ("Describe this image in detail", "caption", {"detail": "long"}),
    ("caption #1", "caption", {"image": ["#1"]}),
    ("please describe that picture", "caption", {"image": ["#2"]}),
    ("give me a caption", "caption", {}),
    ("write a short caption for it", "caption", {"detail": "short"}),
    ("write alt text for it", "caption", {"detail": "short", "image": ["#2"]}),
    ("give me a one-line caption", "caption", {"detail": "short"}),
    ("alt-text please", "caption", {}),
    ("generate alt text for #1", "caption", {"image": ["#1"]}),
    ("one line caption", "caption", {}),
    ("a caption please", "caption", {}),
    ("give it a caption", "caption", {}),
    ("write a description of this image", "caption", {"detail": "short"}),
    ("write a long description", "caption", {"detail": "long"}),
    ("describe what you see", "caption", {}),
    ("summarise the picture", "caption", {}),
    # reading text -> read-text
    ("read the text", "read-text", {"image": ["#2"]}),
    ("what does it say?", "read-text", {}),
    ("what does the sign say", "read-text", {}),
    ("What text is on the sign?", "read-text", {}),
    ("can you read #1 for me", "read-text", {"image": ["#1"]}),
    ("transcribe the receipt", "read-text", {}),
    ("what's written on the door?", "read-text", {}),
    ("extract the text from it", "read-text", {}),
    ("what's the text?", "read-text", {"image": ["#2"]}),
    ("what is the text on the label", "read-text", {}),
    ("is there any text?", "read-text", {}),
    ("any text in it?", "read-text", {}),
    ("what are the words on the sign?", "read-text", {}),
    ("what's the writing say?", "read-text", {}),
    ("grab the text", "read-text", {}),
    ("text please", "read-text", {}),
    ("read it out", "read-text", {}),
    ("ocr", "read-text", {}),
    # drawing with no image meant -> draw
    ("draw a cat", "draw", {"prompt": "a cat"}),
    ("Paint a sunset over the sea, please", "draw", {"prompt": "a sunset over the sea"}),
    ("generate an image of a red fox", "draw", {"prompt": "a red fox"}),
    ("imagine a castle in the style of Monet", "draw", {"prompt": "a castle in the style of Monet"}),
    ("could you sketch a bicycle", "draw", {"prompt": "a bicycle"}),
    ("make me a picture of a dragon", "draw", {"prompt": "a dragon"}),
    ("show me a painting of a harbour at night", "draw", {"prompt": "a harbour at night"}),
    ("create a logo with a blue whale", "draw", {"prompt": "a logo with a blue whale"}),
    ("generate 3 pictures of owls", "draw", {"prompt": "owls", "count": 3}),
    ("draw two versions of a red kite", "draw", {"prompt": "a red kite", "count": 2}),
    ("I want a picture of a horse", "draw", {"prompt": "a horse"}),
    ("i'd like a painting of a ship", "draw", {"prompt": "a ship"}),
    ("give me an image of a forest", "draw", {"prompt": "a forest"}),
    ("a picture of a cat please", "draw", {"prompt": "a cat"}),
    ("new image: a blue bird", "draw", {"prompt": "a blue bird"}),
    ("draw a new picture of a lighthouse", "draw", {"prompt": "a lighthouse"}),
    ("create a poster for a jazz concert", "draw", {"prompt": "a poster for a jazz concert"}),
    ("generate a wallpaper of space", "draw", {"prompt": "space"}),
    # a style -> restyle
    ("make it look like a watercolour painting", "restyle", {"style": "a watercolour painting", "image": "#2"}),
    ("in the style of van Gogh", "restyle", {"style": "in the style of van Gogh"}),
    ("turn it into a pencil sketch", "restyle", {"style": "a pencil sketch"}),
    ("make #1 look like an oil painting", "restyle", {"style": "an oil painting", "image": "#1"}),
    ("redraw this picture as a comic", "restyle", {"style": "a comic"}),
    ("restyle it as anime", "restyle", {"style": "anime"}),
    ("make it a charcoal drawing", "restyle", {"style": "a charcoal drawing"}),
    ("give it a cyberpunk style", "restyle", {"style": "cyberpunk"}),
    ("convert the photo to black and white", "restyle", {"style": "black and white"}),
    ("now make it look like night time", "restyle", {"style": "night time"}),
    ("make it black and white", "restyle", {"style": "black and white", "image": "#2"}),
    ("make it sepia", "restyle", {"style": "sepia"}),
    ("make this grayscale", "restyle", {"style": "grayscale"}),
    ("make it cyberpunk", "restyle", {"style": "cyberpunk"}),
    ("make it more like a pencil sketch", "restyle", {"style": "a pencil sketch"}),
    ("make it like a comic book", "restyle", {"style": "a comic book"}),
    ("redo it as pixel art", "restyle", {"style": "pixel art"}),
    ("do #1 in watercolour", "restyle", {"style": "watercolour", "image": "#1"}),
    ("in Monet's style", "restyle", {"style": "in the style of Monet", "image": "#2"}),
    ("Picasso style", "restyle", {"style": "Picasso style"}),
    ("anime style", "restyle", {"style": "anime style"}),
    ("make it look older", "restyle", {"style": "an old vintage photo"}),
    ("make it look vintage", "restyle", {"style": "vintage"}),
    ("make it look spooky", "restyle", {"style": "spooky"}),
    ("apply a vintage filter", "restyle", {"style": "vintage"}),
    ("add a film grain effect", "restyle", {"style": "film grain"}),
    ("Make it look like Van Gogh painted it", "restyle", {"style": "a painting by Van Gogh"}),
    ("make it look like Picasso did it", "restyle", {"style": "Picasso"}),
    ("make it look like Monet would", "restyle", {"style": "Monet"}),
    ("make it look like a child drew it", "restyle", {"style": "a drawing by a child"}),
    ("make it look like it was taken in the 1920s", "restyle", {"style": "a photo taken in the 1920s"}),
    ("try it in the style of Hokusai", "restyle", {"style": "in the style of Hokusai"}),
    ("stylize it as ukiyo-e", "restyle", {"style": "ukiyo-e"}),
    ("cartoonify it", "restyle", {"style": "a cartoon"}),
    ("what would it look like as a painting?", "restyle", {"style": "a painting"}),
    ("how would this look in Monet's style?", "restyle", {"style": "in the style of Monet"}),
    ("same picture but as a watercolour", "restyle", {"style": "a watercolour"}),
    ("as an oil painting", "restyle", {"style": "an oil painting"}),
    ("watercolour version please", "restyle", {"style": "watercolour"}),
    ("give me a pixel art version", "restyle", {"style": "pixel art"}),
    ("let's make it look like an oil painting", "restyle", {"style": "an oil painting"}),
    # a change in a region -> edit
    ("put a red hat in the top left", "edit", {"prompt": "a red hat", "box": "0,0,128,96", "image": "#2"}),
    ("add a boat in the bottom right corner", "edit", {"prompt": "a boat", "box": "128,96,256,192"}),
    ("replace the sky with a sunset in the top half", "edit",
     {"prompt": "a sunset", "negative_prompt": "the sky", "box": "0,0,256,96"}),
    ("add a dog in the box 10,10,50,60", "edit", {"prompt": "a dog", "box": "10,10,50,60"}),
    ("place a seagull at the centre of #1", "edit", {"prompt": "a seagull", "box": "64,48,192,144", "image": "#1"}),
    ("remove the bird in the middle", "edit", {"prompt": "background", "negative_prompt": "the bird"}),
    ("put a moon in the upper right of it", "edit", {"prompt": "a moon", "box": "128,0,256,96"}),
    ("add a tree on the left side", "edit", {"prompt": "a tree", "box": "0,0,128,192"}),
    ("draw a flag in the bottom left", "edit", {"prompt": "a flag", "box": "0,96,128,192"}),
    ("add a red balloon at the top", "edit", {"prompt": "a red balloon", "box": "0,0,256,96"}),
    ("swap the lighthouse for a windmill in the centre", "edit",
     {"prompt": "a windmill", "negative_prompt": "the lighthouse", "box": "64,48,192,144"}),
    # the target stays in the prompt: the whole region is repainted (see router._edit_prompt)
    ("add a hat to the man in the top left", "edit", {"prompt": "a hat on the man", "box": "0,0,128,96"}),
    ("put a hat on the man in the top left", "edit", {"prompt": "a hat on the man", "box": "0,0,128,96"}),
    ("add a castle to the background at the top", "edit", {"prompt": "a castle in the background"}),
    ("get rid of the bird in the top right", "edit",
     {"prompt": "background", "negative_prompt": "the bird", "box": "128,0,256,96"}),
    ("fill the top left with flowers", "edit", {"prompt": "flowers", "box": "0,0,128,96"}),
    ("change the top right to a blue sky", "edit", {"prompt": "a blue sky", "box": "128,0,256,96"}),
    ("replace the top half with a starry sky", "edit", {"prompt": "a starry sky", "box": "0,0,256,96"}),
    ("in the top left, add a bird", "edit", {"prompt": "a bird", "box": "0,0,128,96"}),
    ("in the bottom right put a cat", "edit", {"prompt": "a cat", "box": "128,96,256,192"}),
    ("put a cat in the bottom right-hand corner", "edit", {"prompt": "a cat", "box": "128,96,256,192"}),
    ("paint a rainbow across the top", "edit", {"prompt": "a rainbow", "box": "0,0,256,96"}),
    ("can you add a tree in the bottom left?", "edit", {"prompt": "a tree", "box": "0,96,128,192"}),
    # a thing found by words -> edit --where (a place named too narrows it: --box)
    ("replace the sky with a sunset", "edit", {"prompt": "a sunset", "where": ["the sky"], "image": "#2"}),
    ("remove the person on the left", "edit", {"prompt": "background", "where": ["the person"], "box": "0,0,128,192"}),
    ("make the car red", "edit", {"prompt": "red car", "where": ["the car"]}),
    # a mask by words -> segment
    ("segment the sky", "segment", {"where": ["the sky"], "image": "#2"}),
    # a picture as the style -> restyle --style-image
    ("paint this in the style of #1", "restyle", {"style_image": "#1", "image": "#2"}),
    ("make it look like that painting", "restyle", {"style_image": "#2", "image": "#1"}),
]

# Ambiguous or incomplete: a short question back, never a guess.
QUESTIONS = [
    ("hello", "not sure"),
    ("the sea", "not sure"),
    ("add a hat to it", "Where in the picture"),
    ("paint it blue", "new picture"),
    ("draw a hat on it", "new picture"),
    ("draw", "What should I draw"),
    ("add a dog in the box", "Which box"),
    # an auxiliary verb with no subject is an order we cannot place, not a question
    ("do the thing", "not sure"),
    ("do it", "not sure"),
    ("do something", "not sure"),
    ("do that for me", "not sure"),
    ("could you do the thing", "not sure"),
    ("have a look", "not sure"),
    ("will do", "not sure"),
    ("help", "/help"),
    ("what can you do?", "/help"),
    ("make it darker", "not sure"),
    ("make the top left red", "not sure"),
]


def _expand(value, session):
    if isinstance(value, list):
        return [_expand(v, session) for v in value]
    if isinstance(value, str) and value.startswith("#") and value[1:].isdigit():
        return session.image(int(value[1:])).path
    return value


def test_every_rule_is_reached_by_the_table(two_images, registry):
    """The rule that answers each phrase routes to the tool the table expects, and every built-in
    rule answers at least one phrase: a rule no phrase reaches is dead or untested."""
    answered = {}
    for phrase, _ in QUESTIONS:  # first: a routed edit's box is remembered for "in the box"
        if wants_help(phrase):  # answered before any rule
            continue
        found = first_match(RULES, Request.read(phrase, two_images, registry.tools))
        if found is not None:
            assert isinstance(found[1], str), phrase  # a question back, never a call
            answered.setdefault(found[0].name, phrase)
    for phrase, tool, _ in ROUTES:
        rule, answer = first_match(RULES, Request.read(phrase, two_images, registry.tools))
        assert rule.tool == tool and answer.tool == tool, (phrase, rule.name)
        answered.setdefault(rule.name, phrase)
    assert sorted(answered) == sorted(rule.name for rule in RULES)
    # train-lora has no chat phrase yet (the chat starts it with /train-lora)
    assert {rule.tool for rule in RULES} - {None} == set(registry.tools) - {"train-lora"}


@pytest.mark.parametrize("phrase, tool, expected", ROUTES, ids=[p for p, _, _ in ROUTES])
def test_phrase_routes_to_tool(phrase, tool, expected, two_images, registry):
    call = route(phrase, two_images, registry.tools)
    assert isinstance(call, ToolCall), call
    assert call.tool == tool
    for key, value in expected.items():
        assert call.args.get(key) == _expand(value, two_images), key
    # every routed call is valid for the tool as declared
    from visionloop.values import check_args

    check_args(registry.tools[tool], call.args)


@pytest.mark.parametrize("phrase, answer", QUESTIONS)
def test_ambiguous_input_gets_a_question(phrase, answer, two_images, registry):
    reply = route(phrase, two_images, registry.tools)
    assert isinstance(reply, str) and answer in reply


def test_the_registry_has_exactly_the_eight_built_in_tools(registry):
    assert sorted(registry.tools) == ["caption", "draw", "edit", "read-text", "restyle", "see", "segment",
                                      "train-lora"]
    builtin = {"see", "caption", "read_text", "draw", "edit", "restyle", "segment"}
    assert not builtin & set(registry.broken), registry.broken
    for name in registry.tools:  # each comes from its own plugins/ module
        assert registry.tools[name].run.__module__ == "visionloop_plugins." + name.replace("-", "_")


def test_no_image_yet_asks_which(registry):
    for phrase in ("what colour is it?", "describe it", "make it look like a comic", "put a hat in the top left"):
        reply = route(phrase, Session(), registry.tools)
        assert isinstance(reply, str) and "Which image" in reply, phrase
    # a bare style means an image only when the chat has one
    for phrase in ("in Monet's style", "as a watercolour", "anime style"):
        assert isinstance(route(phrase, Session(), registry.tools), str), phrase


def test_a_mentioned_path_is_attached_and_named_in_the_question(tmp_path, example_image, registry):
    session = Session()
    call = route(f"what's in {example_image}?", session, registry.tools)
    assert call.tool == "see" and call.args["image"] == [str(example_image)]
    assert call.args["question"] == "what's in this image?"
    assert [p.number for p in session.images] == [1]


def test_a_missing_path_gets_a_one_line_answer(registry):
    session = Session()
    reply = route("what's in ~/Downloads/receipt.jpg?", session, registry.tools)
    assert isinstance(reply, str) and "receipt.jpg: file not found" in reply and "\n" not in reply
    assert session.images == []


def test_unknown_image_number(two_images, registry):
    reply = route("describe #7", two_images, registry.tools)
    assert reply == "there is no image #7 (images: #1 to #2)"


@pytest.mark.parametrize("region, fractions", sorted(REGIONS.items()))
def test_every_region_gives_its_box(region, fractions, two_images, registry):
    call = route(f"put a star in the {region}", two_images, registry.tools)
    w, h = two_images.current.size
    expected = tuple(round(f * s) for f, s in zip(fractions, (w, h, w, h)))
    assert call.tool == "edit" and tuple(int(v) for v in call.args["box"].split(",")) == expected


def test_in_the_box_reuses_the_last_box(two_images, registry):
    first = route("/edit --box 5,6,70,80 a hat", two_images, registry.tools)
    assert first.args["box"] == "5,6,70,80"
    again = route("put a scarf in the box", two_images, registry.tools)
    assert again.tool == "edit" and again.args["box"] == "5,6,70,80"


def test_routing_is_the_same_whatever_tools_exist():
    """The router only names tools; a missing one is said plainly."""
    session = Session()
    reply = route("draw a cat", session, {})
    assert reply.startswith("the draw tool is not available")
