"""What the `train-lora` tool and the `train` command share: the inputs, and one call that
trains a LoRA (captions from LLaVA through the shared vision interface) and builds the result.

Every input defaults to None, meaning "not given": a fresh run fills in the defaults, a resumed
run the checkpoint's settings (a given one that differs from them is refused).
"""

from __future__ import annotations

from visionloop.tools import Input, ToolResult

TOOL = "train-lora"

#: Every `data` key the tool sets (tests/test_workflow_returns.py checks declared keys).
DATA_KEYS = ("name", "lora", "kohya", "folder", "lora_folder", "training_json", "captions_file", "base_model",
             "trigger", "steps", "seed", "settings", "pictures", "skipped", "loss_first", "loss_last",
             "eval_loss_start", "eval_loss_end", "loss_plot", "contact_sheet", "device", "precision", "threads",
             "training_seconds", "resumed_at")


def train_inputs(with_out: bool = True) -> list[Input]:
    """The tool's inputs; the `train` command leaves out `lora_dir` (its `--out` says it)."""
    inputs = [
        Input("folder", "text", help="the folder of pictures to train on", required=True, positional=True),
        Input("name", "text", help="the LoRA's name (its folder in the loras folder)", required=True, max_chars=64),
        Input("trigger", "text", None, "a word put first in every caption, to call the style up in prompts",
              max_chars=100),
        Input("steps", "int", None, "training steps (default 1000)", min=1, max=1_000_000),
        Input("rank", "int", None, "LoRA rank (default 8)", min=1, max=512),
        Input("lr", "float", None, "learning rate (default 1e-4)", min=1e-8, max=1.0),
        Input("batch", "int", None, "pictures per step (default 1)", min=1, max=256),
        Input("resolution", "int", None, "training size in pixels, a multiple of 8 (default 512)", min=8, max=4096),
        Input("seed", "int", None, "random seed (default 0)", min=0, max=2**32 - 1),
        Input("captions", "text", None, "auto (default: IMAGE.txt beside a picture, else LLaVA), files "
              "(IMAGE.txt only), a PATH.jsonl from an earlier run, or one fixed caption", max_chars=1000),
        Input("validate", "text", None, "a prompt drawn every --every steps with a fixed seed", max_chars=1000),
        Input("every", "int", None, "validation pictures and checkpoints every N steps (default 100)", min=1),
        Input("flip", "bool", None, "also train on the pictures flipped left to right"),
        Input("text_encoder", "bool", None, "train a LoRA on the text encoder too"),
        Input("gradient_checkpointing", "bool", None, "less memory, slower steps"),
        Input("precision", "choice", None, "auto (default: bf16 or fp16 on a GPU, fp32 on the CPU), fp32, fp16, "
              "or bf16 (on the CPU: autocast, where the CPU has native bf16)",
              choices=("auto", "fp32", "fp16", "bf16")),
        Input("adam8bit", "bool", None, "8-bit AdamW (bitsandbytes, CUDA only)"),
        Input("resume", "bool", False, "continue from the LoRA's last checkpoint"),
        Input("overwrite", "bool", False, "replace a LoRA of the same name"),
    ]
    if with_out:
        inputs.append(Input("lora_dir", "text", None, "where the LoRA's folder goes (default: the loras folder "
                                                      "in the user data folder)"))
    return inputs


SETTINGS = ("trigger", "steps", "rank", "lr", "batch", "resolution", "seed", "captions", "validate", "every", "flip",
            "text_encoder", "gradient_checkpointing", "precision", "adam8bit")


def train(ctx, folder, name, resume=False, overwrite=False, lora_dir=None, on_step=None, **settings) -> ToolResult:
    """Train (or resume) a LoRA and say what came of it."""
    from pathlib import Path

    from visionloop.models.training import train_lora
    from visionloop.models.training.captions import QUESTION

    def ask(path: Path) -> str:
        from visionloop.toolkit.vision import ask_llava

        return ask_llava(ctx, TOOL, [str(path)], QUESTION).text

    given = {key: settings.get(key) for key in SETTINGS}
    rec = train_lora(ctx, folder, name, given, out=lora_dir, resume=bool(resume), overwrite=bool(overwrite),
                     ask=ask, on_step=on_step)
    target = Path(rec["folder_out"])
    files = rec["files"]
    images = [str(target / f) for f in (files["loss_plot"], files["contact_sheet"]) if f]
    losses = rec["loss"]
    data = {"name": rec["name"], "lora": str(target / files["diffusers"]), "kohya": str(target / files["kohya"]),
            "folder": rec["folder"], "lora_folder": str(target), "training_json": str(target / "training.json"),
            "captions_file": str(target / files["captions"]), "base_model": rec["base_model"],
            "trigger": rec["settings"]["trigger"], "steps": rec["steps_done"], "seed": rec["seed"],
            "settings": rec["settings"], "pictures": rec["pictures"], "skipped": rec["skipped"],
            "loss_first": losses[0], "loss_last": losses[-1], "eval_loss_start": rec["eval_loss"]["start"],
            "eval_loss_end": rec["eval_loss"]["end"], "loss_plot": images[0],
            "contact_sheet": images[1] if len(images) > 1 else None, "device": rec["device"],
            "precision": rec["precision"], "threads": rec["threads"], "training_seconds": rec["seconds"],
            "resumed_at": rec["resumed_at"]}
    text = (f"trained LoRA {rec['name']}: {rec['steps_done']} steps on {len(rec['pictures'])} pictures, "
            f"evaluation loss {rec['eval_loss']['start']:.4f} -> {rec['eval_loss']['end']:.4f}; "
            f"use it with --lora {rec['name'] if lora_dir is None else target}")
    return ToolResult(tool=TOOL, text=text, images=images, data=data)
