"""`/run WORKFLOW [#N] [name=value ...]` in the chat: the CLI's `visionloop run` arguments, `#N` (or
the current image) as the workflow's image input, each step's streamed text on its own lines, and
the plan or the outcome shown as the chat shows things."""

from __future__ import annotations

import re
from pathlib import Path

from visionloop.chat.output import json_line
from visionloop.chat.slash_commands import _ArgError, _ChatParser, split_words
from visionloop.errors import VisionloopError
from visionloop.images import IMAGE_SUFFIXES

#: `#2`: an image of the conversation by number (`#-1`, `#0` are refused by the session, in words)
IMAGE_REF = re.compile(r"#-?\d+")


def run_parser() -> _ChatParser:
    """`visionloop run`'s own arguments, plus bare name=value words; errors raise instead of exiting."""
    from visionloop.workflows.plan import add_run_arguments

    parser = _ChatParser(prog="/run", add_help=False, allow_abbrev=False)
    add_run_arguments(parser)
    parser.add_argument("words", nargs="*", metavar="NAME=VALUE")
    return parser


def run_command(chat, rest: str) -> None:
    """`/run WORKFLOW [name=value ...]`, with the CLI's `--input/-i NAME=VALUE` and
    `--dry-run` (the plan, as `visionloop run --dry-run` prints it; nothing loads)."""
    try:
        from visionloop.workflows.plan import parse_inputs
        from visionloop.workflows import check_inputs, load_workflow, run_workflow
    except ImportError:
        raise VisionloopError("workflows are not available in this installation") from None

    parser = run_parser()
    try:
        ns, unknown = parser.parse_known_intermixed_args(split_words(rest))
    except _ArgError as exc:
        if "-i/--input" in str(exc):
            raise VisionloopError("/run: --input needs NAME=VALUE") from None
        raise VisionloopError("usage: /run WORKFLOW [#N] [--dry-run] [name=value | --input NAME=VALUE ...]") from None
    pairs, refs = [], []
    for pair in [*ns.inputs, *ns.words, *unknown]:  # unknown: `--seed=3` is taken as seed=3
        if IMAGE_REF.fullmatch(pair.strip()):  # `/run alt-text #2`: an image by number, as other commands take it
            refs.append(pair.strip())
            continue
        key, eq, value = pair.partition("=")
        pairs.append(f"{key.strip().lstrip('-').replace('-', '_')}={value}" if eq and key.strip("-") else pair)
    inputs = parse_inputs(pairs, bad="/run: expected name=value (or --input NAME=VALUE), got {pair!r}",
                          twice="/run: input {name!r} given twice")
    wf = load_workflow(ns.workflow, chat.config, chat.registry)
    fill_images(chat, wf, inputs, refs)
    out_dir = Path(chat.loop.ctx.out_dir)
    if ns.dry_run:
        show_plan(chat, wf, check_inputs(wf, inputs), out_dir)
        return
    steps = StepText(chat.out)
    outcome = chat.wait(chat.submit(lambda ctx: steps.run(ctx, lambda: run_workflow(wf, inputs, ctx, chat.registry,
                                                                                    out_dir))))
    chat.out.end_stream()  # the last streamed answer ends its line before anything else is printed
    if outcome is not None:
        show_outcome(chat, outcome, steps.texts)


def fill_images(chat, wf, inputs: dict, refs: list[str]) -> None:
    """The workflow's image inputs from the conversation: `#N` by name (`image=#2`) or bare (`#2`,
    given to the image inputs not named, in order), else the current image for one with no default."""
    free = [key for key in wf.image_inputs() if key not in inputs]
    if len(refs) > len(free):
        named = f"its image input {free[0]!r}" if len(free) == 1 else \
            (f"{len(free)} image inputs without a value" if free else "no image input left to fill")
        raise VisionloopError(f"/run: {' '.join(refs)}: workflow {wf.name} takes {named}; "
                              "give images as NAME=#N")
    inputs.update(zip(free, refs))
    for key in wf.image_inputs():
        value = inputs.get(key)
        if value is not None and IMAGE_REF.fullmatch(value.strip()):
            inputs[key] = chat.session.image(value.strip()[1:]).path
        elif value is None and chat.session.current is not None and wf.spec.inputs[key].default is None:
            inputs[key] = chat.session.current.path


class StepText:
    """What a workflow's steps stream into the chat: each step's text ends its own line (the engine
    reports every step as it starts and ends), and is kept so the summary does not print it again."""

    def __init__(self, out):
        self.out = out
        self.texts: list[str] = []
        self._piece: list[str] = []

    def run(self, ctx, job):
        shown, reported = ctx.on_text, ctx.report

        def on_text(piece: str) -> None:
            self._piece.append(piece)
            shown(piece)

        def report(line: str) -> None:  # a step starts or ends: end its streamed line first
            self.end()
            if reported is not None:
                reported(line)

        ctx.on_text, ctx.report = (on_text if shown else None), report
        try:
            return job()
        finally:
            self.end()
            ctx.on_text, ctx.report = shown, reported

    def end(self) -> None:
        self.out.end_stream()
        if self._piece:
            self.texts.append("".join(self._piece).strip())
            self._piece = []

def show_plan(chat, wf, values: dict, out_dir: Path) -> None:
    """The CLI's dry-run plan, built and worded by the same code (`visionloop.workflows.plan`)."""
    from visionloop.workflows.plan import build_plan, format_plan

    plan = build_plan(wf, values, chat.config, chat.registry, out_dir)
    if chat.out.json_mode:
        with chat.out.lock:
            print(json_line(plan), file=chat.out.out, flush=True)
        chat.session.add_turn("note", f"planned workflow {wf.name}")
        return
    chat._say(format_plan(plan), "plan")

def show_outcome(chat, outcome, streamed: list[str] = ()) -> None:
    """A workflow's result: its image outputs join the list; an output whose text was streamed
    while its step ran is not printed again."""
    numbers = []
    for value in outcome.outputs.values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and Path(item).suffix.lower() in IMAGE_SUFFIXES \
                    and Path(item).is_file():
                numbers.append(chat.session.attach(item, source=outcome.workflow).number)
    if chat.out.json_mode:
        with chat.out.lock:
            print(json_line({**outcome.to_json(), "image_numbers": numbers}),
                  file=chat.out.out, flush=True)
        return
    if not outcome.ok:
        chat._error(f"workflow {outcome.workflow} failed: {outcome.error}")
        return
    lines = [f"workflow {outcome.workflow}: {outcome.status} ({outcome.run_dir})"]
    lines += [f"  {k}: (shown above)" if isinstance(v, str) and v.strip() and v.strip() in streamed
              else f"  {k}: {v}" for k, v in outcome.outputs.items()]
    lines += [f"#{n} {chat.session.image(n).path}" for n in numbers]
    chat._say("\n".join(lines), "workflow")
