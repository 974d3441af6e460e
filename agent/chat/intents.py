"""The built-in intent rules, in the order they are tried (`RULES`): which words mean which tool,
and how the words become its arguments. The patterns live in `visionloop.chat.phrases`; the
machinery (`Rule`, `Request`) in `visionloop.chat.rules`.

1. a caption asked for in so many words ("write alt text for it")   -> caption
2. draw / paint / generate / imagine ... with no image meant          -> draw
3. put / add / replace ... in the top left / in the box ...           -> edit, with a region
   replace the sky with ... / remove the person (on the left)          -> edit, where = the thing (and the region)
4. segment / mask / select the sky, a mask of the sea                  -> segment
5. make it look like #2 / that painting, paint this in the style of #2 -> restyle, with a style image
6. make it look like ... / in the style of ... / turn it into ...      -> restyle
7. a bare style with an image in the chat ("anime style")             -> restyle
8. make the car red                                                    -> edit, where = the thing
9. an edit or a drawing of "it" with no place given                   -> a question back
10. read the text / what does it say / transcribe                     -> read-text
11. describe ... with more asked than a caption ("describe the colours") -> see
12. a question                                                        -> see
"""

from __future__ import annotations

import re

from visionloop.chat.phrases import (AUX_QUESTION, ASK_YOU, BARE_STYLE, BOX, CAPTION, COUNT, DETAIL, DRAW, EDIT, FILLER,
                                MAKE_THING, NOT_A_THING, NUMBERS, QUESTION, READ, REGION, RESTYLE, SEGMENT, STYLE_REF,
                                WHERE, WHERE_VERBS, clean, edit_prompt, region_box, style_words)
from visionloop.chat.rules import Answer, Request, Rule
from visionloop.chat.slash_commands import WHICH_IMAGE


def _caption_asked(req: Request) -> bool:
    # before drawing, whose verbs ("generate", "create") it shares: nothing asked beyond the caption
    return bool(CAPTION.search(req.core)) and not FILLER.sub(" ", req.core).strip()


def _caption(req: Request, found) -> Answer:
    return {"detail": "long" if DETAIL.search(req.core) else "short"}


def _draw(req: Request, found: re.Match) -> Answer:
    prompt, args = clean(found.group("p")), {}
    many = COUNT.match(prompt)
    if many:  # "generate 3 pictures of owls": three seeds of one prompt
        n = many.group("n").lower()
        args["count"] = int(n) if n.isdigit() else NUMBERS[n]
        prompt = prompt[many.end():]
    if not prompt:
        return "What should I draw? e.g. 'draw a lighthouse at dusk'."
    return {"prompt": prompt, **args}


def _edit(req: Request, found: re.Match) -> Answer:
    """A box from "in the top left" or "in the box x0,y0,x1,y1"; without one, None (a style or
    a question may still fit)."""
    rest, box = found.group("rest"), None
    verb = found.group("verb").lower()
    region, numbers = REGION.search(rest), BOX.search(rest)
    if region is None and verb in ("replace", "change", "fill", "paint"):
        region = REGION.search("in " + rest)  # the region is the object: "fill the top left with ..."
        if region is not None and region.start() == 0:
            rest = "in " + rest
        else:
            region = None
    if numbers:
        if numbers.group("nums"):
            box = tuple(int(n) for n in re.split(r"\s*,\s*", numbers.group("nums")))
        elif req.session.last_box is not None:
            box = req.session.last_box
        else:
            return "Which box? Give it as x0,y0,x1,y1, e.g. 'in the box 10,10,90,90'."
        rest = rest[:numbers.start()] + rest[numbers.end():]
    elif region:
        pic = req.refs[0] if req.refs else req.session.current
        if pic is None:
            return WHICH_IMAGE
        box = region_box(region, pic.size)
        rest = rest[:region.start()] + rest[region.end():]
    things = _things(verb, rest)  # "replace the sky with ...": the segmenter finds the sky
    if box is None and not things:
        return None
    prompt, negative = edit_prompt(verb, rest)
    if not prompt:
        return "What should go there? e.g. 'put a red hat in the top left'."
    if things and re.sub(r"\s+", " ", verb.lower()) == "change" and re.fullmatch(r"(?!(?:a|an|the|some)\b)[\w-]+", prompt):
        prompt, negative = f"{prompt} {_bare(things[0])}", None  # "change the car to red": "red car"
    args = {"prompt": prompt}
    if box is not None:
        args["box"] = ",".join(map(str, box))
    if things:
        args["where"] = things
    if negative:
        args["negative_prompt"] = negative
    return args


def _bare(thing: str) -> str:
    return re.sub(r"^(?:the|a|an|his|her|their|my|our|its|your)\s+", "", thing, flags=re.IGNORECASE)


def _thing(words: str) -> bool:
    """Is `words` a thing in the picture to find (not "it", the picture itself, or a place)?"""
    return bool(words) and not NOT_A_THING.match(words) and not REGION.match("in " + words)


def _things(verb: str, rest: str) -> list[str]:
    """The things an edit's verb names, to be found by words: what is between the verb and
    "with"/"to"/"for" ("replace the sky with a sunset"), or all of it ("remove the person");
    "the cat and the dog" is two. None for verbs that bring something new ("add a hat")."""
    verb = re.sub(r"\s+", " ", verb.lower())
    if verb not in WHERE_VERBS:
        return []
    if verb in ("replace", "change", "swap", "fill"):
        swap = re.search(r"\b(?:with|to|for|by|into)\s+(?P<new>.+)$", rest, re.IGNORECASE | re.DOTALL)
        if swap is None:
            return []
        rest = rest[:swap.start()]
    whole = clean(rest)
    if not _thing(whole):
        return []
    return [part for part in re.split(r"\s*(?:,|\band\b)\s*", whole) if _thing(part)]


def _make_thing(req: Request, found: re.Match) -> Answer:
    """ "make the car red": the car, found by words, repainted as a red car."""
    where = clean(found.group("where"))
    if not _thing(where):
        return None
    return {"prompt": f"{found.group('what')} {_bare(where)}", "where": [where]}


def _segment(req: Request, found: re.Match) -> Answer:
    where = clean(found.group("w") or found.group("m") or "")
    return {"where": [where]} if _thing(where) else None


def _style_ref(req: Request) -> re.Match | None:
    """ "like #2", "in the style of that painting": a picture as the style."""
    for pattern in RESTYLE:
        styled = pattern.search(req.core)
        ref = STYLE_REF.match(styled.group("p").strip()) if styled else None
        if ref:
            return ref
    return None


def _style_image(req: Request, ref: re.Match) -> Answer:
    """The style picture (#N, or the latest one for "that painting") and the picture to
    restyle: another one the message names, else the latest other one in the chat."""
    session = req.session
    style = session.image(ref.group("n")) if ref.group("n") else session.current
    if style is None:
        return WHICH_IMAGE
    others = [p for p in req.refs if p != style]
    photo = others[0] if others else next((p for p in reversed(session.images) if p != style), None)
    if photo is None:
        return (f"Which picture should take the style of #{style.number}? Add it, or name both, e.g. "
                f"'paint #1 in the style of #{style.number}'.")
    return {"image": photo.path, "style_image": style.path}


def _style_asked(req: Request) -> str | None:
    """The style from "make it look like ...", "turn it into ...", "in the style of ..."."""
    for pattern in RESTYLE:
        styled = pattern.search(req.core)
        if styled:
            prompt = style_words(styled.group("p")) or ("a cartoon" if req.core.lower().startswith("cartoon") else "")
            if prompt:
                return prompt
    return None


def _bare_style(req: Request) -> str | None:
    """With an image in the chat and nothing else asked, a bare style means that image:
    "in Monet's style", "anime style", "as a watercolour", "a pixel art version please"."""
    if not req.session.images or EDIT.match(req.core) or DRAW.match(req.core):
        return None
    bare = re.sub(r"[\s,]+(?:please|thanks|thank you)\W*$", "", req.core, flags=re.I)
    for pattern in BARE_STYLE:
        styled = pattern.match(bare)
        if styled:
            who = styled.groupdict().get("who")
            prompt = f"in the style of {clean(who)}" if who and "'" in bare[:styled.end("who") + 2] \
                else (f"{clean(who)} style" if who else style_words(styled.group("p")))
            if prompt.strip() and prompt.strip() != "style":
                return prompt
    return None


def _restyle(req: Request, style: str) -> Answer:
    # the style goes to `style` where the tool has one (it keeps the subject)
    tool = req.tools.get("restyle")
    return {"style" if tool and tool.input("style") else "prompt": style}


def _unplaced(req: Request) -> bool:
    # a drawing of "it" would be a new picture only without "it"; an edit needs a place
    return bool(EDIT.match(req.core) or (DRAW.match(req.core) and req.meant))


def _where(req: Request, found) -> Answer:
    if DRAW.match(req.core) and not REGION.search(req.core):
        return ("Do you want a new picture (say 'draw a ...' without 'it'), or a change to the current one "
                "('make it look like ...', or 'put ... in the top left')?")
    return WHERE


def _asks(req: Request) -> bool:
    core = req.core
    return core.endswith(("?", "\u061f", "\uff1f")) or bool(  # "?", Arabic "؟", full-width "？"
        QUESTION.match(core) or AUX_QUESTION.match(core) or ASK_YOU.match(req.text))


def _question(req: Request, found) -> Answer:
    """The question as LLaVA sees the images: "#2" becomes "this image", or "image 1", "image 2"."""
    if len(req.refs) == 1:
        question = re.sub(r"#\d+\b", "this image", req.text)
    else:
        order = {p.number: i + 1 for i, p in enumerate(req.refs)}
        question = re.sub(r"#(\d+)\b", lambda m: f"image {order[int(m.group(1))]}", req.text)
    return {"question": question.strip()}


RULES: list[Rule] = [
    Rule("caption", "caption", _caption_asked, _caption),
    Rule("draw", "draw", lambda req: not req.meant and DRAW.match(req.core), _draw),
    Rule("edit", "edit", lambda req: EDIT.match(req.core), _edit),
    Rule("segment", "segment", SEGMENT, _segment),
    Rule("style image", "restyle", _style_ref, _style_image),
    Rule("restyle", "restyle", _style_asked, _restyle),
    Rule("bare style", "restyle", _bare_style, _restyle),
    Rule("make thing", "edit", MAKE_THING, _make_thing),
    Rule("where", None, _unplaced, _where),
    Rule("read", "read-text", READ),
    Rule("describe more", "see", CAPTION, _question),
    Rule("question", "see", _asks, _question),
]
