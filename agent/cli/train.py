"""`visionloop train FOLDER --name NAME ...` and `visionloop loras [--json]`.

`train` is a thin face over the `train-lora` tool (same inputs, `agent/toolkit/training.py`):
it runs through the job loop with a progress bar on a terminal; the global `--out` names the
folder that gets the LoRA's folder (default: the loras folder in the user data folder). Ctrl-C
or SIGTERM stops at the end of the step in hand, saves a checkpoint and exits 130 (143 for
SIGTERM), saying how to continue (`--resume`).
"""

from __future__ import annotations

import signal
import sys
import threading

from visionloop.cli.jsonlines import json_command


def add_commands(sub, common) -> None:
    from visionloop.toolkit.arguments import add_input_argument
    from visionloop.toolkit.training import train_inputs

    p = sub.add_parser("train", parents=[common()], help="train a LoRA on a folder of pictures",
                       description="Fine-tune Stable Diffusion (a LoRA) on a folder of pictures, captioned by "
                                   "IMAGE.txt files or by LLaVA; then draw with --lora NAME. --out DIR puts the "
                                   "LoRA's folder in DIR instead of the loras folder of the user data folder.")
    for inp in train_inputs(with_out=False):
        if inp.name == "folder":
            p.add_argument("folder", metavar="FOLDER", help=inp.help)
        else:
            add_input_argument(p, inp)
    p.set_defaults(handler=cmd_train)
    p = sub.add_parser("loras", parents=[common()], help="list the trained LoRAs",
                       description="The LoRAs in the loras folder (of the user data folder, or --out DIR) with "
                                   "their base model, trigger word, steps and date.")
    p.set_defaults(handler=cmd_loras)


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled as a Ctrl-C that exits 143."""


def _on_sigterm(signum, frame):
    raise _Terminated()


def cmd_train(args, app) -> int:
    from visionloop.errors import Cancelled
    from visionloop.toolkit.arguments import tool_values
    from visionloop.toolkit.training import TOOL
    from visionloop.tools import run_tool

    tool = app.registry.tool(TOOL)
    values = tool_values(args, tool)
    if getattr(args, "out", None):
        values["lora_dir"] = args.out
    future = app.loop.submit(lambda ctx: run_tool(tool, values, ctx))
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if threading.current_thread() is threading.main_thread() \
        else None
    try:
        try:
            results = _wait(future)
        except KeyboardInterrupt as stop:
            code = 143 if isinstance(stop, _Terminated) else 130
            app.loop.cancel(future)  # the step in hand ends, then a checkpoint is written
            try:
                future.result()
            except Cancelled as exc:
                from visionloop.cli.app import one_line

                print(f"interrupted: {one_line(exc)}", file=sys.stderr)
                return code
            except Exception as exc:  # noqa: BLE001 - said, then the interrupt's exit code
                print(f"error: {exc}", file=sys.stderr)
            return code
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return app.print_results(results)


def _wait(future):
    import concurrent.futures

    while True:
        try:
            return future.result(timeout=0.1)
        except concurrent.futures.TimeoutError:
            continue


@json_command("loras")
def cmd_loras(args, app, out) -> int:
    """One line per LoRA: a table, or under --json one JSON object each (`error` null)."""
    from visionloop.models.training.store import list_loras, loras_dir
    from visionloop.paths import user_path

    root = user_path(args.out, "--out") if getattr(args, "out", None) else loras_dir()
    entries = list_loras(root)
    if app.json:
        for entry in entries:
            out.result({**entry, "error": None})
        return 0
    if not entries:
        if not getattr(args, "quiet", False):
            print(f"no LoRAs in {root} yet (visionloop train FOLDER --name NAME makes one)", file=sys.stderr)
        return 0
    rows = [(e["name"], e["base_model"] or "?", e["trigger"] or "-", str(e["steps"] or "-"),
             (e["date"] or "-")[:16].replace("T", " "), e["status"]) for e in entries]
    head = ("name", "base model", "trigger", "steps", "date", "status")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for row in [head, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return 0
