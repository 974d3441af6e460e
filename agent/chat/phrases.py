"""The router's words: the patterns that recognise each intent, and how the words left over
become a prompt, a style or a box (`visionloop.chat.intents` puts them together into rules).

Every pattern here runs on the user's own words only, after the polite lead-in ("please", "can
you", ...) is stripped and mentioned paths became `#N`.
"""

from __future__ import annotations

import re

# Words that open a request politely and carry no intent ("please", "can you", "and", ...).
LEAD = re.compile(r"^(?:please|pls|ok(?:ay)?|now|and|so|then|also|next|hey|could you|can you|would you|"
                  r"will you|let'?s|i'?d like you to|i want you to|i would like you to|go ahead and)\b[\s,]*", re.I)
MEANT = re.compile(r"#\d+|\bit\b|\b(?:this|that|the|my|these|those)\s+(?:image|picture|photo|pic|photograph|"
                   r"one|drawing|painting)s?\b|\b(?:this|that)\s*[?.!]*$", re.I)
_KIND = r"(?:picture|image|drawing|painting|photo|illustration|sketch|render|poster|wallpaper)s?"
DRAW = re.compile(r"^(?:(?:draw|paint|generate|imagine|sketch|illustrate|render|create|"
                  r"(?:make|show)(?:\s+me)?(?=\s+(?:a|an|some)\s+" + _KIND + r"\b))\b(?:\s+me)?\s*"
                  r"(?:(?:a|an|some)\s+(?:new\s+)?" + _KIND + r"\s+of\s+)?"
                  # "I want a picture of ...", "give me a drawing of ...", "a painting of ...", "new image: ..."
                  r"|(?:(?:i\s+(?:want|need)|i'?d\s+like|i\s+would\s+like|give\s+me|get\s+me)\s+)?(?:a|an|some)\s+"
                  r"(?:new\s+)?" + _KIND + r"\s+of\s+|new\s+(?:picture|image|drawing|painting)\s*[:,-]\s*)"
                  r"(?P<p>.*)$", re.I | re.S)
EDIT = re.compile(r"^(?P<verb>replace|put|add|place|insert|remove|erase|delete|change|swap|paint|draw|fill|"
                  r"get\s+rid\s+of|take\s+(?:out|away))\b"
                  r"\s*(?P<rest>.*)$", re.I | re.S)
REGION = re.compile(
    r"\b(?:in|at|on|to|into|onto|across|over|along)\s+the\s+"
    r"(?:(?P<v>top|upper|bottom|lower)[\s-]*(?P<h>left|right)|(?P<one>top|upper|bottom|lower|left|right|"
    r"centre|center|middle))(?:[\s-]*(?:hand|half|side|corner|quadrant|part|edge|area))*"
    r"(?:\s+(?:of|in)\s+(?:it|the\s+(?:image|picture|photo)|#\d+))?\b", re.I)
BOX = re.compile(r"(?:\b(?:in|inside|within)\s+(?:the|a|this)\s+box\b(?:\s+(?:at\s+)?)?)?"
                 r"(?P<nums>\d+\s*,\s*\d+\s*,\s*\d+\s*,\s*\d+)|\b(?:in|inside|within)\s+(?:the|this)\s+box\b", re.I)
_IT = r"(?:it|this|that|#\d+|(?:this|that|the|my)\s+\w+)"
# Words that are a style on their own ("make it sepia", "make it look vintage").
_LOOKS = (r"(?:black\s+(?:and|&)\s+white|b\s*&\s*w|sepia|gr[ae]y\s*scale|monochrome|vintage|retro|old|older|aged|"
          r"antique|old[\s-]fashioned|faded|cyberpunk|steampunk|noir|film\s+noir|futuristic|cartoon(?:ish|y)?|"
          r"anime|photo[\s-]?realistic|psychedelic|surreal|dreamy|spooky|gothic|pastel|neon|minimalist|"
          r"impressionist|abstract|cubist|pixelated|pixel\s+art|hand[\s-]drawn|watercolou?r|oil[\s-]painted|"
          r"low[\s-]poly|8[\s-]?bit|16[\s-]?bit|lo[\s-]?fi|polaroid|cinematic|autumnal|wintry|snowy|sunset)")
RESTYLE = [
    re.compile(r"^(?:make|let)\s+" + _IT + r"\s+look\s+(?:more\s+)?like\s+(?P<p>.+)", re.I | re.S),
    re.compile(r"^make\s+" + _IT + r"\s+(?:look\s+)?(?:more\s+)?(?P<p>" + _LOOKS + r")\W*$", re.I | re.S),
    # "make it look older", "make this look spooky": a look, whatever the word
    re.compile(r"^make\s+" + _IT + r"\s+look\s+(?P<p>[\w-]+(?:\s+[\w-]+)?)\W*$", re.I | re.S),
    re.compile(r"^make\s+" + _IT + r"\s+(?:more\s+)?like\s+(?P<p>.+)", re.I | re.S),
    re.compile(r"^(?:turn|convert|transform|change|make)\s+" + _IT + r"\s+(?:into|to|as|in)\s+(?P<p>.+)", re.I | re.S),
    re.compile(r"^(?:redraw|repaint|render|draw|paint|do|redo|try|reimagine|re-imagine|styli[sz]e|recreate|remake)\s+"
               + _IT + r"\s+(?:again\s+)?(?:as|like|in)\s+(?P<p>.+)", re.I | re.S),
    re.compile(r"^make\s+(?:it|this|that|#\d+)\s+(?P<p>(?:a|an)\s+.+)", re.I | re.S),
    re.compile(r"^restyle\b(?:\s+(?:it|this|that|#\d+))?(?:\s+(?:as|like|in|into|to))?\s*(?P<p>.+)", re.I | re.S),
    re.compile(r"^give\s+(?:it|this|that|#\d+|(?:this|that|the|my)\s+\w+)\s+(?:a|an)\s+(?P<p>.+?)\s+"
               r"(?:style|look|feel|makeover)\W*$", re.I | re.S),
    # "apply a vintage filter", "add a film grain effect to it"
    re.compile(r"^(?:apply|add|use|put)\s+(?:a|an|the|some)\s+(?P<p>.+?)\s+(?:filter|effect|look|finish|treatment)"
               r"(?:\s+(?:to|on)\s+" + _IT + r")?\W*$", re.I | re.S),
    # "what would it look like as a painting?": the user wants to see it
    re.compile(r"^(?:what|how)\s+would\s+" + _IT + r"\s+look(?:\s+like)?\s+(?P<p>(?:as|in)\s+.+)", re.I | re.S),
    re.compile(r"^(?:cartoonify|cartoonise|cartoonize)\s+(?:it|this|that|#\d+)(?P<p>)\W*$", re.I | re.S),
    re.compile(r"(?P<p>\bin\s+the\s+style\s+of\s+.+)", re.I | re.S),
]
# With an image in the chat and nothing else asked, a bare style means that image:
# "in Monet's style", "anime style", "as a watercolour", "a pixel art version please".
BARE_STYLE = [
    re.compile(r"^(?:(?:do\s+it\s+)?in\s+)?(?P<who>[\w .&'-]+?)(?:'s?)?\s+style\W*$", re.I | re.S),
    re.compile(r"^(?:(?:the\s+)?same\s+(?:picture|image|photo|thing|one)\s*,?\s*)?(?:but\s+)?(?:now\s+)?as\s+"
               r"(?P<p>.+?)\W*$", re.I | re.S),
    re.compile(r"^(?:(?:give\s+me|make|do|create|draw|paint)\s+)?(?:a|an)?\s*(?P<p>[\w -]+?)\s+version"
               r"(?:\s+of\s+" + _IT + r")?\W*$", re.I | re.S),
    re.compile(r"^(?:in\s+)?(?P<p>" + _LOOKS + r")(?:\s+style)?\W*$", re.I | re.S),
]
# "like Van Gogh painted it" -> "a painting by Van Gogh"; "like Picasso did it" -> "Picasso".
_BY = {"painted": "a painting by", "paint": "a painting by", "drew": "a drawing by", "draw": "a drawing by",
       "sketched": "a sketch by", "sketch": "a sketch by", "photographed": "a photo by", "shot": "a photo by"}
# Only with "it" after the verb (or "would" at the end): "a pencil sketch" keeps its "sketch".
_MAKER = re.compile(r"^(?P<who>.+?)\s+(?:(?:(?:would|might|could)(?:\s+have)?|had)\s+)?"
                    r"(?:(?P<verb>painted|paint|drew|draw|sketched|sketch|photographed|shot|did|do|done|made|make)"
                    r"\s+(?:it|this|that)|(?:would|might)(?:\s+have)?)\W*$", re.I)
_WAS = re.compile(r"^(?:was|were|is|had\s+been)\s+(?P<verb>taken|shot|photographed|painted|drawn|sketched|made)\s+"
                  r"(?P<rest>.+)$", re.I)
_OLDER = {"old": "an old vintage photo", "older": "an old vintage photo", "aged": "an old vintage photo"}
COUNT = re.compile(r"^(?P<n>\d+|two|three|four|five|six|several)\s+(?:pictures|images|drawings|paintings|"
                   r"photos|illustrations|sketches|versions|variations)\s+of\s+", re.I)
NUMBERS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "several": 4}
READ = re.compile(r"\b(?:read|transcribe|ocr)\b|\bwhat\s+(?:does|do|did)\s+(?:it|this|that|#\d+|the\s+[\w ]{1,30}?)"
                  r"\s+say\b|\bwhat(?:'s|\s+is|\s+was)\s+written\b|\b(?:extract|get|copy|pull)\s+(?:out\s+)?"
                  r"(?:all\s+)?(?:the\s+)?(?:text|words)\b|\bwhat\s+(?:text|words)\b"
                  # "what's the text?", "is there any text?", "what's the writing say", "grab the text"
                  r"|\bwhat(?:'s|s|\s+is|\s+are)\s+the\s+(?:text|writing|words)\b|\b(?:is\s+there|are\s+there|any)\s+"
                  r"(?:any\s+)?(?:text|writing|words)\b|\bwriting\s+say\b|\bgrab\s+(?:all\s+)?(?:the\s+)?(?:text|words)\b"
                  r"|^(?:the\s+)?text(?:\s+please)?\W*$", re.I)
CAPTION = re.compile(r"^(?:describe|caption|summari[sz]e)\b|\balt[\s-]?text\b|^(?:a|an)\s+(?:caption|description)\b"
                     r"|\b(?:one[\s-]line|short|brief|long)\s+(?:caption|description)\b"
                     r"|\b(?:give|write|make|suggest|generate|create|add)\s+(?:me\s+|it\s+|this\s+)?(?:a\s+|an\s+)?"
                     r"(?:short\s+|brief\s+|good\s+|detailed\s+|long\s+|one[\s-]line\s+)?(?:caption|description)\b", re.I)
DETAIL = re.compile(r"\b(?:in\s+detail|detailed|in\s+depth|thoroughly|at\s+length|fully|long)\b", re.I)
FILLER = re.compile(r"#\d+|\balt[\s-]?text\b|\bone[\s-]line\b|\bwhat\s+you\s+see\b|"
                    r"\b(?:describe|caption|summari[sz]e|give|write|make|suggest|generate|create|add|long|of|"
                    r"me|a|an|short|brief|good|"
                    r"detailed|description|in\s+detail|in\s+depth|thoroughly|at\s+length|fully|please|for|"
                    r"it|this|that|the|image|picture|photo|pic|one|briefly)\b|[^\w#]+", re.I)
QUESTION = re.compile(r"^(?:what|what's|whats|which|who|who's|whose|whom|where|when|why|how|tell\s+me|explain|guess|"
                      r"identify|count|name|list|compare|find)\b", re.I)
# An auxiliary verb opens a question only when a subject follows it ("do you", "is there",
# "does it", "can you see"): bare "do the thing" is an order we cannot place, not a question.
# "it"/"this"/"the ..." follow a verb as its object too ("do it", "have a look"), so they
# count as a subject only after the verbs that never start an order.
_SUBJECT = r"(?:you|i|we|they|he|she|there|anyone|anybody|someone|somebody)"
_WEAK_SUBJECT = r"(?:it|this|that|these|those|#\d+|the|a|an|my|your|his|her|its|our|their|any|some)"
AUX_QUESTION = re.compile(
    r"^(?:(?:do|don't|have|haven't|had|hadn't)\s+" + _SUBJECT + r"|"
    r"(?:is|isn't|are|aren't|was|wasn't|were|weren't|does|doesn't|did|didn't|can|can't|could|couldn't|"
    r"would|wouldn't|will|won't|should|shouldn't|has|hasn't)\s+(?:" + _SUBJECT + "|" + _WEAK_SUBJECT + r"))"
    r"(?=\W|$)", re.I)
# "can you ..." is stripped as politeness; with a verb of seeing or knowing it was a question.
ASK_YOU = re.compile(r"^(?:(?:please|ok(?:ay)?|so|and|hey|now)[\s,]+)*(?:can|could|would|will)\s+you\s+"
                     r"(?:see|spot|tell|notice|find|identify|recogni[sz]e|count|guess|make\s+out|work\s+out|"
                     r"figure\s+out)\b", re.I)
# "help", "what can you do?": the chat shows /help (see `wants_help`).
HELP = re.compile(r"^(?:help|\?+|commands|help\s+me|what\s+can\s+(?:you|i)\s+do|what\s+(?:are|is)\s+the\s+commands|"
                  r"how\s+does\s+this\s+work|how\s+do\s+i\s+use\s+(?:this|you|it)|what\s+do\s+you\s+do)\W*$", re.I)
HELP_HINT = "Type /help for the commands, or ask about an image, 'draw ...', 'make it look like ...'."
_REF_WORDS = re.compile(r"\s*\b(?:of|on|in|to|into|from)\s+(?:it|#\d+|(?:this|that|the)\s+(?:image|picture|photo))\b"
                        r"|#\d+|\bit\b", re.I)

# --- regions found by words (edit --where, segment) and styles taken from a picture -------------
# Verbs whose object is a thing already in the picture: "replace the sky with ...", "remove the
# person on the left": the object becomes `where` (CLIPSeg finds it).
WHERE_VERBS = ("replace", "change", "swap", "fill", "remove", "erase", "delete", "get rid of", "take out",
               "take away")
# Objects that are no thing to find: the picture itself, a pronoun, a place.
NOT_A_THING = re.compile(r"^(?:it|this|that|them|these|those|everything|all|#\d+|"
                         r"(?:the|this|that|my|whole|entire|\s)+(?:image|picture|photo|pic|photograph|drawing|"
                         r"painting|one|thing|whole\s+thing)s?)$", re.IGNORECASE)
# "make the car red", "make the sky a bit darker": a thing and what it should become.
MAKE_THING = re.compile(r"^make\s+(?P<where>(?:the|his|her|their|my|our|its|your)\s+[\w'-]+(?:\s+[\w'-]+){0,2}?)\s+"
                        r"(?P<what>(?:(?:a\s+(?:bit|little)|bright|dark|light|pale|deep|more|less|very|much)\s+)?"
                        r"[a-z]+)\W*$", re.IGNORECASE)
# "segment the sky", "mask the car", "select the person on the left", "a mask of the sea"
SEGMENT = re.compile(r"^(?:(?:segment|mask|select|outline|highlight|cut\s+out)\s+(?P<w>.+)|"
                     r"(?:(?:make|create|give\s+me|get|show\s+me|draw)\s+)?(?:a|the)\s+mask\s+(?:of|for)\s+(?P<m>.+))$",
                     re.IGNORECASE | re.DOTALL)
# What "like ..." / "in the style of ..." names when it is a picture: "#2", "that painting".
STYLE_REF = re.compile(r"^(?:(?:in\s+)?the\s+style\s+of\s+)?(?:#(?P<n>\d+)|(?:this|that|the|my|your)\s+(?:other\s+)?"
                       r"(?:painting|picture|image|photo|drawing|artwork|art|piece|poster|print|reference|one))"
                       r"(?:'s\s+style|\s+style|\s+does|\s+looks?)?(?:[\s,]+(?:please|thanks|thank\s+you))?\W*$", re.IGNORECASE)

# Regions as fractions of the picture: (x0, y0, x1, y1).
REGIONS = {
    "top left": (0, 0, .5, .5), "top right": (.5, 0, 1, .5), "bottom left": (0, .5, .5, 1),
    "bottom right": (.5, .5, 1, 1), "top": (0, 0, 1, .5), "bottom": (0, .5, 1, 1), "left": (0, 0, .5, 1),
    "right": (.5, 0, 1, 1), "centre": (.25, .25, .75, .75),
}
_SYNONYMS = {"upper": "top", "lower": "bottom", "center": "centre", "middle": "centre"}
WHERE = ("Where in the picture? Say e.g. 'in the top left', 'in the centre', 'in the bottom half', "
         "or give a box: /edit --box x0,y0,x1,y1 ...")


def strip_lead(text: str) -> str:
    """`text` without its polite lead-in ("please", "ok so can you", ...)."""
    while True:
        shorter = LEAD.sub("", text, count=1).strip()
        if shorter == text:
            return text
        text = shorter


def clean(text: str) -> str:
    """A prompt from the words left over: no references, no dangling prepositions."""
    text = _REF_WORDS.sub("", text)
    text = re.sub(r"\s+", " ", text).strip(" ,.;:!?\"'")
    text = re.sub(r"[\s,]+(?:please|thanks|thank you)$", "", text, flags=re.I)
    return re.sub(r"\s+\b(?:on|to|in|of|into|onto|at|with|for)$", "", text, flags=re.I).strip(" ,.;:!?")


def region_box(match: re.Match, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The pixel box of a `REGION` match ("the top left") in a picture of `size`."""
    if match.group("v"):
        key = f"{_SYNONYMS.get(match.group('v').lower(), match.group('v').lower())} {match.group('h').lower()}"
    else:
        one = match.group("one").lower()
        key = _SYNONYMS.get(one, one)
    fx0, fy0, fx1, fy1 = REGIONS[key]
    w, h = size
    return round(fx0 * w), round(fy0 * h), round(fx1 * w), round(fy1 * h)


def edit_prompt(verb: str, rest: str) -> tuple[str, str | None]:
    """(prompt, negative prompt) from the words after the verb.

    The inpainting mask is the whole region (a quarter or half of the picture), so the prompt
    must describe everything that region should show, not just the new thing: for "add a hat
    to the man in the top left", a prompt of "a hat" would paint a hat over the man, while
    "a hat on the man" keeps the man and puts the hat on him. So the target ("the man") stays,
    and only the preposition is made to read as a description ("to the man" -> "on the man",
    "to the background" -> "in the background")."""
    verb = re.sub(r"\s+", " ", verb.lower())
    if verb in ("get rid of", "take out", "take away"):
        verb = "remove"
    swap = re.search(r"\b(?:with|to|for|by|into)\s+(?P<new>.+)$", rest, re.I | re.S)
    if verb in ("replace", "change", "swap", "fill") and swap:
        return clean(swap.group("new")), clean(rest[:swap.start()]) or None
    if verb in ("remove", "erase", "delete"):
        return "background", clean(rest) or None
    prompt = clean(rest)
    if verb in ("add", "put", "place", "insert"):
        prompt = re.sub(r"\b(?:to|onto)\s+the\s+(?=(?:background|foreground|sky|scene|picture|image|photo|water|sea)\b)",
                        "in the ", prompt, flags=re.I)
        prompt = re.sub(r"\b(?:to|onto)\s+(?=(?:the|his|her|their|its|my)\s)", "on ", prompt, flags=re.I)
    return prompt, None


def style_words(words: str) -> str:
    """A restyle prompt from what followed "like"/"as": the maker's verb goes ("like Van Gogh
    painted it" -> "a painting by Van Gogh", "like Picasso did it" -> "Picasso"), and "like it
    was taken in the 1920s" becomes "a photo taken in the 1920s"."""
    maker = _MAKER.match(words.strip())
    if maker and len(maker.group("who").split()) <= 4:
        verb = (maker.group("verb") or "").lower()
        return f"{_BY[verb]} {clean(maker.group('who'))}" if verb in _BY else clean(maker.group("who"))
    style = re.sub(r"^as\s+", "", clean(words), flags=re.I)
    style = re.sub(r"^(?:in\s+)?(?P<who>[\w .&-]+?)'s?\s+style$", r"in the style of \g<who>", style, flags=re.I)
    style = re.sub(r"^the\s+style\s+of\b", "in the style of", style, flags=re.I)
    was = _WAS.match(style)
    if was:
        verb = was.group("verb").lower()
        noun = {"taken": "a photo taken", "shot": "a photo taken", "photographed": "a photo taken",
                "painted": "a painting", "drawn": "a drawing", "sketched": "a sketch"}.get(verb, "a picture made")
        return f"{noun} {was.group('rest')}"
    return _OLDER.get(style.lower(), style)
