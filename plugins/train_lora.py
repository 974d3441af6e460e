"""`train-lora`: fine-tune Stable Diffusion on a folder of pictures (a LoRA), captioned by
`IMAGE.txt` files or by LLaVA. The same training as `visionloop train`; as a tool it runs in
workflows (caption, train, then draw with `lora: ${steps.ID.data.lora}`) and in the chat, through
the one job loop, and a cancel saves a checkpoint that `resume: true` continues."""

from visionloop.hookspecs import hookimpl
from visionloop.toolkit.training import DATA_KEYS, TOOL, train, train_inputs
from visionloop.tools import Tool


def train_lora(ctx, folder, name, **values):
    return train(ctx, folder, name, **values)


@hookimpl
def register_tools(register):
    register(Tool(
        name=TOOL,
        description="Train a LoRA (fine-tune Stable Diffusion) on a folder of pictures; draw with --lora NAME.",
        inputs=train_inputs(),
        run=train_lora,
        returns_images=True,
        data_keys=DATA_KEYS,
    ))
