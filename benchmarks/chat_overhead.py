"""How much does the chat cost on top of a raw transformers `generate`?

One chat turn ("what is in #1?": routing, the loop, the follow-up memory, printing) against
`processor(...)` + `model.generate(...)` + `decode` on the same loaded weights, with the same
image, the exact prompt the chat built and the same settings. Each chat turn starts from a fresh
session, so the prompt (and the work) stays the same across rounds. Calls alternate so machine
noise hits both equally; the script prints the median of each and their ratio, plus the
router's own time per message. Tiny profile by default (no download):

    python benchmarks/chat_overhead.py [--profile tiny] [--rounds 30] [--image PATH]
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MESSAGES = ["what is in #1?", "describe it", "read the text", "draw a cat", "make it look like a comic",
            "put a hat in the top left", "hello"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--config", default=None)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--image", default=str(ROOT / "examples" / "lighthouse.png"))
    args = parser.parse_args()

    import torch
    from PIL import Image

    from agent.chat import Chat, Output
    from agent.config import load_config
    from agent.context import Context
    from agent.loop import Loop
    from agent.plugins import load_registry
    from agent.router import route

    config = load_config(args.config, args.profile)
    registry = load_registry()
    loop = Loop(registry, Context.create(config, tempfile.mkdtemp()))

    def chat_turn():
        chat = Chat(registry, loop, output=Output(out=io.StringIO(), err=io.StringIO()))
        chat.session.attach(args.image)
        chat.handle("what is in #1?")
        return chat.session.last_result

    first = chat_turn()  # loads the model, warms up
    assert first.error is None, first.error
    llava = loop.ctx.models.llava()
    prompt, max_new = first.data["prompt"], first.data["max_new_tokens"]

    def raw() -> str:
        image = Image.open(args.image).convert("RGB")
        inputs = llava.processor(images=[image], text=prompt, return_tensors="pt").to(llava.device)
        with torch.inference_mode():
            out = llava.model.generate(**inputs, max_new_tokens=max_new, do_sample=False)
        return llava.processor.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()

    assert raw() == first.text, "the chat and raw generate disagree"
    chat_times, raw_times = [], []
    for _ in range(args.rounds):
        t = time.perf_counter()
        chat_turn()
        chat_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        raw()
        raw_times.append(time.perf_counter() - t)
    loop.close()

    chat, plain = statistics.median(chat_times), statistics.median(raw_times)
    session = Chat(registry, loop, output=Output(out=io.StringIO())).session
    session.attach(args.image)
    started = time.perf_counter()
    for _ in range(args.rounds):
        for message in MESSAGES:
            route(message, session, registry.tools)
    per_message = (time.perf_counter() - started) / (args.rounds * len(MESSAGES))
    print(f"profile {args.profile}, device {llava.device}, {args.rounds} rounds, {first.data['new_tokens']} new tokens")
    print(f"raw generate     median {plain * 1000:8.2f} ms")
    print(f"chat turn (see)  median {chat * 1000:8.2f} ms")
    print(f"ratio chat/raw          {chat / plain:8.2f}")
    print(f"router alone            {per_message * 1e6:8.1f} us per message")


if __name__ == "__main__":
    main()
