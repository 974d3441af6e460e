"""How much does the tool path cost on top of a raw transformers `generate`?

Both sides use the same loaded weights (the tool's ModelCache hands out the model; the raw side
calls `processor(...)` + `model.generate(...)` + `decode` on it directly), with the same image,
prompt and settings. Calls alternate so that machine noise hits both equally; the script prints
the median of each and their ratio. Runs on the tiny profile by default (no download):

    python benchmarks/llava_overhead.py [--profile tiny] [--rounds 30] [--image PATH]
"""

from __future__ import annotations

from _common import alternate, checked_raw, parser, report, setup


def main() -> None:
    args = parser(__doc__, rounds=30).parse_args()

    from visionloop.loop import Loop
    from visionloop.tools import ToolCall

    _, registry, ctx = setup(args.config, args.profile)
    loop = Loop(registry, ctx)
    call = ToolCall("caption", {"image": [args.image]})
    (first,) = loop.call(call)  # loads the model, warms up
    assert first.error is None, first.error
    llava = loop.ctx.models.llava()
    raw = checked_raw(llava, args.image, first, "the tool")
    times = alternate(args.rounds, **{"caption tool": lambda: loop.call(call), "raw generate": raw})
    loop.close()
    print(f"model: {first.data['model']} on {llava.device}, {first.data['max_new_tokens']} new tokens, {args.rounds} alternating rounds")
    report(times, baseline="raw generate")


if __name__ == "__main__":
    main()
