""""use my NAME style" in a chat message: the user's own trained LoRA joins a draw, edit or
restyle call.

The rules route the message as usual ("draw a dog in my rex style" -> draw, prompt "a dog in my
rex style"); then the phrase is taken out of the text it landed in, `lora: [NAME]` is added, and
the LoRA's trigger word (from its `training.json`) leads the prompt, as in training. A name that
is not a trained LoRA is one line back (with the ones there are), never a silent plain drawing.
"""

from __future__ import annotations

import re

from visionloop.tools import ToolCall

#: "use my rex style", "in my rex style", "with my rex lora", "using my rex look"
MY_LORA = re.compile(r"[\s,;]*\b(?:use|using|with|in)\s+my\s+(?P<name>[\w][\w.-]{0,63})\s+(?:style|lora|look)\b[.!]?",
                     re.IGNORECASE)
#: the argument each drawing tool's words land in
TEXT_ARG = {"draw": "prompt", "edit": "prompt", "restyle": "style"}


def apply_my_lora(call, message: str):
    """`call` with the named LoRA added (a `ToolCall`), a one-line answer when the name is not
    a trained LoRA (`str`), or `call` unchanged when the message names none."""
    found = MY_LORA.search(message)
    if not isinstance(call, ToolCall) or call.tool not in TEXT_ARG or found is None:
        return call
    from visionloop.models.training.store import list_loras

    name = found.group("name")
    known = {entry["name"].lower(): entry for entry in list_loras() if entry.get("file")}
    entry = known.get(name.lower())
    if entry is None:
        there = ", ".join(sorted(e["name"] for e in known.values())) or "none yet (`visionloop train` makes one)"
        return f"There is no trained LoRA named {name!r} (yours: {there})."
    args = dict(call.args)
    key = TEXT_ARG[call.tool]
    text = MY_LORA.sub("", str(args.get(key) or "")).strip(" ,;")
    trigger = entry.get("trigger")
    if trigger and trigger.lower() not in text.lower():
        text = f"{trigger}, {text}" if text else trigger
    args[key] = text or f"the {entry['name']} style"
    args["lora"] = [*(args.get("lora") or []), entry["name"]]
    return ToolCall(call.tool, args)
