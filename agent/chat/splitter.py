"""Splitting one chat message into the requests it chains: "describe it, then paint it as a
watercolour and read me any text on it" -> three parts, in order.

What separates two parts:

- "then", "and then", ", then", "after that", "afterwards", "next", "finally" between two requests;
- ";" (a new line alone does not separate: a message may wrap over lines);
- a numbered or bulleted list: "1. describe it 2. read the text", "1) ... 2) ...", "- ... - ...";
- "and" (or ", and") followed by one of the tools' verbs: "... and read me any text",
  "... and describe it" (a bare "and" stays: "black and white", "a cat and a dog").

Only what the user typed is split; nothing here reads text that came out of an image.
"""

from __future__ import annotations

import re

#: verbs that start a request of their own after "and" (the built-in tools' words)
_VERBS = (r"read|transcribe|ocr|describe|caption|summari[sz]e|draw|paint|sketch|generate|imagine|illustrate|"
          r"render|create|make|turn|convert|transform|redraw|repaint|restyle|put|add|replace|remove|erase|"
          r"tell|ask|explain|write|give|show|extract|copy|grab|what|how|who|where|which|is|are|does|do|count|"
          r"list|find|then")
_THEN = re.compile(r"\s*(?:[,;.]\s*)?\b(?:and\s+then|then|after\s+that|afterwards|after\s+which|next|finally|"
                   r"and\s+finally|and\s+after\s+that|once\s+done|when\s+done)\b[\s,:]*", re.IGNORECASE)
_AND = re.compile(r"\s*,?\s*\band\s+(?:also\s+)?(?=(?:" + _VERBS + r")\b)", re.IGNORECASE)
_SEMI = re.compile(r"\s*;+\s*")
_NUMBERED = re.compile(r"(?:^|\s)(?:\(?\d{1,2}[.)]|step\s+\d{1,2}\s*[:.)-]|[-*\u2022])\s+", re.IGNORECASE)
_FIRST = re.compile(r"^(?:first(?:ly)?|to\s+start|start\s+by|begin\s+by)\b[\s,:]*", re.IGNORECASE)


def split_message(message: str) -> list[str]:
    """The parts of `message`, in order; one part when nothing chains (the message itself)."""
    text = message.strip()
    if not text:
        return []
    parts = _numbered(text)
    if parts is None:
        parts = [text]
    out: list[str] = []
    for chunk in parts:
        for piece in _SEMI.split(chunk):
            for step in _split_then(piece):
                out.extend(_split_and(step))
    cleaned = [_tidy(p) for p in out]
    return [p for p in cleaned if p]


def is_compound(message: str) -> bool:
    return len(split_message(message)) > 1


def _numbered(text: str) -> list[str] | None:
    """"1. describe it 2. read the text": the items, when there are at least two."""
    marks = list(_NUMBERED.finditer(text))
    if len(marks) < 2 or marks[0].start() > 0 and text[:marks[0].start()].strip(" :\n").count(" ") > 6:
        return None
    # a lead-in before the first item ("please:") is dropped; decimals such as "2.5" never match (space needed)
    items = [text[m.end():(marks[i + 1].start() if i + 1 < len(marks) else len(text))] for i, m in enumerate(marks)]
    return items if sum(1 for i in items if i.strip()) >= 2 else None


def _split_then(text: str) -> list[str]:
    pieces, start = [], 0
    for m in _THEN.finditer(text):
        if m.start() == 0:  # "then draw ..." at the start: a lead-in, not a separator
            continue
        before = text[start:m.start()]
        if not before.strip() or not text[m.end():].strip():
            continue
        # "next to the tree", "then" as a plain word inside a prompt ("more then ever") is rare; a following
        # "to" means a place, not a step
        if m.group(0).strip(" ,;.").lower() == "next" and re.match(r"\s*to\b", text[m.end() - 1:], re.IGNORECASE):
            continue
        pieces.append(before)
        start = m.end()
    pieces.append(text[start:])
    return pieces


def _split_and(text: str) -> list[str]:
    pieces, start = [], 0
    for m in _AND.finditer(text):
        before = text[start:m.start()]
        if not before.strip():
            continue
        pieces.append(before)
        start = m.end()
    pieces.append(text[start:])
    return pieces


def _tidy(part: str) -> str:
    part = _FIRST.sub("", part.strip(" \t,.;:"))
    return part.strip(" \t,;:")
