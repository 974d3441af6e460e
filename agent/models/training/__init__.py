"""LoRA training on a folder of pictures: diffusers' `train_text_to_image_lora.py` recipe, with
captions from files or LLaVA, checkpoints that resume bit for bit, and both the diffusers and the
kohya file at the end. The `train` command and the `train-lora` tool are thin faces over
`train_lora`; `store` is where trained LoRAs live and how `--lora NAME[:SCALE]` finds them.

- `store.py`: the loras folder, names, `--lora` values, listing, base-model family checks (no torch)
- `data.py`: finding, safely reading, resizing and ordering the pictures
- `captions.py`: captions from `.txt` files, LLaVA, a fixed text or a `captions.jsonl`
- `loop.py`: the trainer (models, LoRA layers, optimizer, one step, evaluation, validation)
- `saving.py`: the LoRA files, checkpoints, `training.json`
- `report.py`: the progress bar, `loss.png`, the contact sheet
- `run.py`: one run from the checks to the last file
"""

from visionloop.models.training.store import (LoraChoice, check_name, list_loras, loras_dir,  # noqa: F401
                                              resolve_loras)


def train_lora(*args, **kwargs):
    """See `visionloop.models.training.run.train_lora` (imported on use: it needs torch)."""
    from visionloop.models.training.run import train_lora as run

    return run(*args, **kwargs)
