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

import io
import time

from _common import alternate, checked_raw, parser, report, setup

MESSAGES = ["what is in #1?", "describe it", "read the text", "draw a cat", "make it look like a comic",
            "put a hat in the top left", "hello"]


def main() -> None:
    args = parser(__doc__, rounds=30).parse_args()

    from visionloop.chat import Chat, Output
    from visionloop.loop import Loop
    from visionloop.chat.router import route

    _, registry, ctx = setup(args.config, args.profile)
    loop = Loop(registry, ctx)

    def chat_turn():
        chat = Chat(registry, loop, output=Output(out=io.StringIO(), err=io.StringIO()))
        chat.session.attach(args.image)
        chat.handle("what is in #1?")
        return chat.session.last_result

    first = chat_turn()  # loads the model, warms up
    assert first.error is None, first.error
    llava = loop.ctx.models.llava()
    raw = checked_raw(llava, args.image, first, "the chat")
    times = alternate(args.rounds, **{"chat turn (see)": chat_turn, "raw generate": raw})
    loop.close()

    session = Chat(registry, loop, output=Output(out=io.StringIO())).session
    session.attach(args.image)
    started = time.perf_counter()
    for _ in range(args.rounds):
        for message in MESSAGES:
            route(message, session, registry.tools)
    per_message = (time.perf_counter() - started) / (args.rounds * len(MESSAGES))
    print(f"profile {args.profile}, device {llava.device}, {args.rounds} rounds, {first.data['new_tokens']} new tokens")
    report(times, baseline="raw generate")
    print(f"router alone: {per_message * 1e6:.1f} us per message")


if __name__ == "__main__":
    main()
