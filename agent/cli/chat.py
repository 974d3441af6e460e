"""`visionloop chat [IMAGE...] [--out DIR] [--watch]`: the conversation in a terminal."""

from __future__ import annotations

import sys

from visionloop.errors import ConfigError, UsageError


def add_commands(sub, common) -> None:
    p = sub.add_parser("chat", parents=[common()], help="talk to the tools: ask, describe, read, draw, edit, restyle",
                       description="A conversation with the tools. Type questions, 'describe it', 'read the text', "
                                   "'draw ...', 'make it look like ...', or /help for the commands. When stdin is "
                                   "not a terminal, one message per line (with --json, one JSON object per result).")
    p.add_argument("images", nargs="*", metavar="IMAGE", help="images to start with (#1, #2, ...)")
    p.add_argument("--watch", action="store_true",
                   help="also run the config's watch rules in this process (results appear between turns)")
    p.add_argument("--yes", "-y", action="store_true",
                   help="run plans of several steps without asking (piped chats only show them otherwise; "
                        "or set plan.confirm: never)")
    p.set_defaults(handler=cmd_chat)


def cmd_chat(args, app) -> int:
    from visionloop.chat import Chat, Output
    from visionloop.chat.repl import interactive, run_lines, run_terminal

    if any(not path.strip() for path in args.images):  # Path("") would be "." (the current folder)
        raise UsageError("IMAGE: expected a file path, got an empty string")
    terminal = interactive(sys.stdin, sys.stdout) and not app.json
    chat = Chat(app.registry, app.loop, output=Output(json_mode=app.json, stream=terminal), config=app.config)
    chat.terminal, chat.yes = terminal, bool(args.yes)  # a terminal asks before a plan runs; --yes never asks
    for path in args.images:  # a bad one stops here, with its one-line reason (exit 1)
        chat.session.attach(path)
    watcher = None
    if args.watch:
        if not app.config.watch:
            where = app.config.source or "built-in defaults (no config file)"  # always name what was read
            raise ConfigError(f"{where}: --watch needs watch rules (a 'watch:' list)")
        from visionloop.watch import Watcher

        watcher = Watcher(app.config.watch, app.loop, app.registry, app.config, announce=chat.announce)
        watcher.start()
    try:
        return run_terminal(chat) if terminal else run_lines(chat, sys.stdin)
    finally:
        if watcher is not None:
            watcher.stop()
        app.loop.close()
