"""The command-line face: argument parsing, exit codes, and one module per group of sub-commands.

- `app`: the parser (one generated sub-command per registered tool), the global flags, `main()`;
- `core`: `tools` and `info`;
- `workflows`: `validate`, `run`, `replay`, `workflows`;
- `watch`: `watch`;
- `chat`: `chat`.

Nothing below the faces imports from here: what the chat shares with the CLI (a tool's options,
a workflow's run arguments and plan) lives in `visionloop.toolkit.arguments` and `visionloop.workflows.plan`.
"""
