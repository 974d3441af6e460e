"""What the built-in tools and the faces share, above the models and below the faces:

- `arguments`: argparse options built from a tool's declared inputs (the CLI's sub-commands and the
  chat's `/tool` commands use the same ones);
- `diffusion`: the common inputs, checks and generation step of `draw`, `edit` and `restyle`;
- `vision`: asking LLaVA, with the generation settings `see`, `caption` and `read-text` share.
"""
