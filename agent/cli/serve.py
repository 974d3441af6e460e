"""`visionloop serve` (the HTTP API and the web gallery) and `visionloop logs` (the history of
tool calls). Nothing heavy is imported until a command runs: `--help` stays fast.

    visionloop serve [--host 127.0.0.1] [--port 8188] [--token-env VAR] [--watch] [--queue N]
                     [--input-root DIR]... [--cors-origin ORIGIN]...
    visionloop logs [-n 20] [--tool NAME] [--search WORDS] [--json]
"""

from __future__ import annotations

import json
import sys

from visionloop.errors import UsageError, VisionloopError

SERVE_EXTRA = ("fastapi", "uvicorn", "jinja2", "python_multipart")


def add_commands(sub, common) -> None:
    p = sub.add_parser("serve", parents=[common()], help="serve the HTTP API and the web gallery",
                       description="One process that owns the models: a JSON API (OpenAPI at /docs), OpenAI-shaped "
                                   "routes under /v1, and a web gallery of every run at /. Listens on loopback "
                                   "unless --host says otherwise, which then needs a token.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; any other "
                                                        "needs --token-env)")
    p.add_argument("--port", type=int, default=8188, help="port (default 8188; 0 picks a free one)")
    p.add_argument("--token-env", metavar="VAR", help="the environment variable holding the token that every "
                                                      "request must send (Authorization: Bearer TOKEN)")
    p.add_argument("--watch", action="store_true", help="also run the config's watch rules in this process")
    p.add_argument("--queue", metavar="N", type=int, default=16, help="jobs that may wait (default 16); "
                                                                      "more are answered 429")
    p.add_argument("--input-root", metavar="DIR", action="append", default=[],
                   help="a folder whose images requests may name as inputs (repeatable; the output folder "
                        "always is one)")
    p.add_argument("--cors-origin", metavar="ORIGIN", action="append", default=[],
                   help="allow browser pages from ORIGIN (e.g. http://127.0.0.1:3000) to call the API (repeatable)")
    p.set_defaults(handler=cmd_serve)

    p = sub.add_parser("logs", parents=[common()], help="show the history of tool calls",
                       description="The history of tool calls, whichever face made them (CLI, chat, watcher, "
                                   "workflows, server), newest last.")
    p.add_argument("-n", "--count", metavar="N", type=int, default=20, help="how many calls (default 20; 0: all)")
    p.add_argument("--tool", metavar="NAME", help="only this tool's calls")
    p.add_argument("--search", metavar="WORDS", nargs="+", help="only calls whose arguments, text or error hold "
                                                                "every word")
    p.set_defaults(handler=cmd_logs)


def _missing_extra() -> str | None:
    import importlib.util

    return next((m for m in SERVE_EXTRA if importlib.util.find_spec(m) is None), None)


def cmd_serve(args, app) -> int:
    from visionloop.server.security import check_bind, read_token

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port}: must be 0..65535")
    if args.queue < 1:
        raise UsageError(f"--queue {args.queue}: must be at least 1")
    token = read_token(args.token_env)
    check_bind(args.host, token)  # before anything binds or loads
    missing = _missing_extra()
    if missing:
        raise VisionloopError(f"serve needs the serve extra (missing {missing}): pip install 'visionloop[serve]'")
    from visionloop.server.app import build_server, create_app
    from visionloop.server.listen import address_of, bind, uvicorn_server

    sock = bind(args.host, args.port)
    server = build_server(app.config, app.registry, getattr(args, "out", None), input_roots=args.input_root,
                          max_queue=args.queue, token=token, cors_origins=args.cors_origin)
    app._loop = server.loop  # main() closes it when the command ends
    quiet = getattr(args, "quiet", False)
    try:
        if args.watch:
            _start_watcher(server, app, quiet)
        verbose = getattr(args, "verbose", 0) or 0
        web = uvicorn_server(create_app(server), "info" if verbose else "warning", access_log=verbose >= 2)
        if not quiet:
            where = address_of(sock)
            hint = f" (open {where}/?token=... once in a browser)" if token else ""
            print(f"visionloop: serving {where}/ (gallery), {where}/docs (API){hint}; output folder "
                  f"{server.roots.out}; Ctrl-C to stop", file=sys.stderr, flush=True)
        try:
            web.run(sockets=[sock])
        except KeyboardInterrupt:  # the second Ctrl-C, or the one uvicorn passes on after stopping
            pass
    finally:
        sock.close()
        server.close()
    return 0


def _start_watcher(server, app, quiet: bool) -> None:
    from visionloop.watch import WatchError, Watcher

    if not app.config.watch:
        raise WatchError("--watch: the config has no `watch:` rules")
    announce = None if quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    server.watcher = Watcher(list(app.config.watch), server.loop, app.registry, app.config, announce=announce)
    server.watcher.start()


# --- logs ---------------------------------------------------------------------------------------

def cmd_logs(args, app) -> int:
    from visionloop import history
    from visionloop.cli.app import one_line

    if args.count < 0:
        raise UsageError(f"-n {args.count}: must be 0 or more")
    try:
        rows = history.rows(limit=args.count or None, tool=args.tool, search=" ".join(args.search or []))
    except Exception as exc:  # noqa: BLE001 - sqlite's own errors: one line naming the file
        raise VisionloopError(f"{history.path()}: cannot read the history: {exc}") from None
    rows.reverse()  # oldest first: the newest call ends up just above the prompt
    if app.json:
        print(json.dumps(rows, ensure_ascii=False, default=str))
        return 0
    if not rows:
        off = "" if getattr(app.config, "history", True) else " (history: false in the config)"
        print(f"no calls recorded{off}; the history is {history.path()}", file=sys.stderr)
        return 0
    for row in rows:
        print(one_line(_headline(row)))
        shown = {k: v for k, v in row["args"].items() if k not in ("prompt", "question")}
        for key in ("prompt", "question"):
            if row["args"].get(key):
                print(f"  {key}: {one_line(row['args'][key])}")
        if shown:
            print("  " + one_line(", ".join(f"{k}={v}" for k, v in shown.items())))
        if row["text"]:
            text = row["text"] if len(row["text"]) <= 400 else row["text"][:400] + "..."
            print("  " + "\n  ".join(one_line(line) for line in text.splitlines()))
        for path in row["images"]:
            print(f"  -> {one_line(path)}")
        if row["error"]:
            print(f"  error: {one_line(row['error'])}")
    return 0


def _headline(row: dict) -> str:
    parts = [f"#{row['id']}", row["time"][:19].replace("T", " "), row["tool"]]
    if row["seconds"] is not None:
        parts.append(f"{row['seconds']:.2f} s")
    if row["seed"] is not None:
        parts.append(f"seed {row['seed']}")
    if row["model"]:
        parts.append(row["model"])
    if row["face"]:
        parts.append(f"[{row['face']}]")
    if row["run"]:
        parts.append(f"run {row['run']}")
    return "  ".join(parts)
