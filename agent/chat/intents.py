"""The built-in intent rules, in the order they are tried (`RULES`): which words mean which tool,
and how the words become its arguments. The patterns live in `visionloop.chat.phrases`; the
machinery (`Rule`, `Request`) in `visionloop.chat.rules`.

1. a caption asked for in so many words ("write alt text for it")   -> caption
2. draw / paint / generate / imagine ... with no image meant          -> draw
3. put / add / replace ... in the top left / in the box ...           -> edit, with a region
4. make it look like ... / in the style of ... / turn it into ...      -> restyle
5. a bare style with an image in the chat ("anime style")             -> restyle
6. an edit or a drawing of "it" with no place given                   -> a question back
7. read the text / what does it say / transcribe                      -> read-text
8. describe ... with more asked than a caption ("describe the colours") -> see
9. a question                                                         -> see
"""

from __future__ import annotations

import re

from visionloop.chat.phrases import (AUX_QUESTION, ASK_YOU, BARE_STYLE, BOX, CAPTION, COUNT, DETAIL, DRAW, EDIT, FILLER,
                                NUMBERS, QUESTION, READ, REGION, RESTYLE, WHERE, clean, edit_prompt, region_box,
                                style_words)
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
    if box is None:
        return None
    prompt, negative = edit_prompt(verb, rest)
    if not prompt:
        return "What should go there? e.g. 'put a red hat in the top left'."
    args = {"prompt": prompt, "box": ",".join(map(str, box))}
    if negative:
        args["negative_prompt"] = negative
    return args


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
    Rule("restyle", "restyle", _style_asked, _restyle),
    Rule("bare style", "restyle", _bare_style, _restyle),
    Rule("where", None, _unplaced, _where),
    Rule("read", "read-text", READ),
    Rule("describe more", "see", CAPTION, _question),
    Rule("question", "see", _asks, _question),
]
