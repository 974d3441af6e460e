"""Argument parsing and exit codes only.

One sub-command per registered tool is generated from the tool's declared inputs, so a tool
from a third-party plugin gets its command with no CLI code. Other commands (tools, info,
validate, run, watch, chat, ...) live in their own modules and plug in through `COMMANDS`.

Exit codes: 0 success; 1 a tool, input or config error (one line on stderr per problem, the
traceback only under -v); 2 a usage error (a bad value of a global flag, such as `--dtype`, too).
"""

from __future__ import annotations

import argparse
import contextvars
import importlib
import logging
import os
import re
import shlex
import sys
from dataclasses import dataclass, field

from visionloop import __version__
from visionloop.errors import UsageError, VisionloopError
from visionloop.toolkit.arguments import add_input_argument, tool_values
from visionloop.tools import Tool, ToolCall, ToolResult

log = logging.getLogger("visionloop")

#: Modules that add sub-commands: each has `add_commands(subparsers, common)` and the
#: parsers it adds set `handler=function(args, app) -> int`.
COMMANDS = ["visionloop.cli.core", "visionloop.cli.workflows", "visionloop.cli.watch", "visionloop.cli.chat",
            "visionloop.cli.init_command", "visionloop.cli.models", "visionloop.cli.train", "visionloop.cli.serve",
            "visionloop.cli.bench"]

#: the command line being parsed, for hints in usage errors
_ARGV: contextvars.ContextVar[list[str]] = contextvars.ContextVar("argv", default=[])
#: names that are files, not options, when they start with "-" and do not exist (yet)
_FILE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".yaml", ".yml", ".json")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # usage errors: one line, exit 2
        hint = dash_hint(_ARGV.get(), message) or value_hint(_ARGV.get(), message)
        self.exit(2, f"{self.prog}: error: {one_line(message)}{one_line(hint)}\n(see {self.prog} --help)\n")


#: a value, not an option, though it starts with "-": what argparse takes for an option when
#: it is not a plain negative number (`--guidance -inf`, `--size -64x64`, `--seed -1e3`)
_DASH_VALUE = re.compile(r"-(\d|\.\d|inf|nan)", re.IGNORECASE)


def value_hint(argv: list[str], message: str) -> str:
    """For `draw cat --guidance -inf`: argparse says the option expected one argument. When the
    word after it looks like a value, show the spelling that passes it: `--guidance=-inf`."""
    wanting = re.match(r"argument (\S+): expected one argument", message)
    if not wanting:
        return ""
    end = argv.index("--") if "--" in argv else len(argv)
    for i, token in enumerate(argv[:end - 1]):
        value = argv[i + 1]
        if token in wanting.group(1).split("/") and _DASH_VALUE.match(value):
            fixed = [*argv[:i], f"{token}={value}", *argv[i + 2:]]
            return f" (a value that starts with '-' reads as an option; write: visionloop {shlex.join(fixed)})"
    return ""


def dash_hint(argv: list[str], message: str) -> str:
    """For `caption -dash.png`: argparse takes the file for an option and says the image is
    missing. When a word before any `--` names a file (or looks like one) and starts with "-",
    show the command that works: `--` before the files, or `--mask=-dash.png` for an option's value."""
    end = argv.index("--") if "--" in argv else len(argv)
    head = argv[:end]
    files = [t for t in head if t.startswith("-") and t != "-" and "=" not in t
             and (os.path.lexists(t) or t.lower().endswith(_FILE_SUFFIXES))]
    if not files:
        return ""
    wanting = re.match(r"argument (\S+): expected one argument", message)
    fixed = list(argv)
    for t in files:
        i = fixed.index(t)
        if wanting and i > 0 and fixed[i - 1] in wanting.group(1).split("/"):  # an option's value
            fixed[i - 1:i + 1] = [f"{fixed[i - 1]}={t}"]
            files = [f for f in files if f != t]
    if files:
        k = fixed.index("--") if "--" in fixed else len(fixed)
        fixed = [t for t in fixed[:k] if t not in files] + ["--", *files, *fixed[k + 1:]]
    return f" (a name that starts with '-' reads as an option; write: visionloop {shlex.join(fixed)})"


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def one_line(text: str) -> str:
    """A message as one safe terminal line: control characters in names it quotes (a newline,
    an escape sequence) are shown escaped, as Python writes them, never sent to the terminal."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], str(text))


def error_lines(exc: Exception) -> str:
    """An error's message for the terminal: one line, or one line per problem for an error
    that lists several (`problems`: a workflow's), each made safe by `one_line`."""
    problems = getattr(exc, "problems", None)
    if isinstance(problems, list) and problems:
        return "\n".join(one_line(p) for p in problems)
    return one_line(exc)


def common_options(skip: set[str] = frozenset()) -> argparse.ArgumentParser:
    """Global flags, accepted before or after the sub-command."""
    p = argparse.ArgumentParser(add_help=False)
    d = argparse.SUPPRESS  # a flag given after the sub-command must not be reset by its defaults
    p.add_argument("--config", metavar="FILE", default=d, help="config file (default: see README)")
    p.add_argument("--profile", metavar="NAME", default=d, help="model profile, e.g. default or tiny")
    p.add_argument("--device", metavar="DEV", default=d, help="auto, cpu, mps, cuda or cuda:N (default: the config's)")
    p.add_argument("--dtype", metavar="TYPE", default=d, help="auto, float32, float16 or bfloat16 (default: the config's)")
    p.add_argument("--json", action="store_true", default=d, help="print results as JSON")
    p.add_argument("--out", metavar="DIR", default=d, help="output folder for images and runs")
    p.add_argument(*[f for f in ("-v", "--verbose") if f not in skip], action="count", default=d,
                   help="more output; -v shows tracebacks")
    # A tool may claim -q for one of its own options (`see -q QUESTION`): there quiet is --quiet
    # only, and its help says so; everywhere else -q is --quiet.
    quiet_help = "only errors and results" + (
        " (here -q is taken by this command's own option: write --quiet)" if "-q" in skip else "")
    p.add_argument(*[f for f in ("-q", "--quiet") if f not in skip], action="store_true", default=d,
                   help=quiet_help)
    return p


def _add_tool_command(sub, tool: Tool) -> None:
    claimed = {f for i in tool.inputs for f in i.flags}
    p = sub.add_parser(tool.name, help=tool.description, description=tool.description,
                       parents=[common_options(claimed)])
    for inp in tool.inputs:
        add_input_argument(p, inp)
    p.set_defaults(handler=run_tool_command, tool=tool.name)


@dataclass
class App:
    """What a command handler gets: the parsed flags, the config and registry, and a lazily
    created context and loop (nothing loads a model until a tool runs)."""

    args: argparse.Namespace
    config: object
    registry: object
    _loop: object = field(default=None, repr=False)

    @property
    def json(self) -> bool:
        return bool(getattr(self.args, "json", False))

    @property
    def loop(self):
        if self._loop is None:
            from visionloop.context import Context
            from visionloop.loop import Loop

            from visionloop.cli.progress import StatusLines, wanted

            progress = wanted(self.args, self.json)  # a terminal's stderr; never --json or -q
            ctx = Context.create(self.config, getattr(self.args, "out", None), progress=progress,
                                 report=StatusLines() if progress else None)
            ctx.models.report = ctx.report
            self._loop = Loop(self.registry, ctx)
        return self._loop

    def print_results(self, results: list[ToolResult]) -> int:
        """A tool call's results. `--json`: one `ToolResult.to_json()` line each, printed as it
        comes (`results` may be a generator yielding them as they complete), then the summary
        line (see `visionloop.cli.jsonlines`). Plain: text and images on stdout, errors on stderr."""
        from visionloop.cli.jsonlines import JsonLines

        out = JsonLines(getattr(self.args, "command", None) or "tool", self.json)
        if self.json:
            try:
                for r in results:
                    out.result(r.to_json())  # an error also goes to stderr, one line
            except KeyboardInterrupt:  # the lines printed so far stand; the summary says why it ended
                out.end(130, error="interrupted")
                raise
            return out.end(1 if out.counts["failed"] else 0)
        results = list(results)
        # several results: each under its image, or its question (`see -q A -q B` about one image)
        same_images = len({tuple(r.data.get("images") or ()) for r in results if r.ok}) == 1
        for r in results:
            if r.error:
                print(f"error: {one_line(r.error)}", file=sys.stderr)
            else:
                if len(results) > 1 and same_images and r.data.get("question"):
                    print(f"{one_line(r.data['question'])}:")
                elif len(results) > 1 and len(r.data.get("images") or []) == 1:
                    print(f"{r.data['images'][0]}:")
                if r.text:
                    print(r.text)
                for path in r.images:
                    print(path)
                if not getattr(self.args, "quiet", False):  # -q: only errors and results
                    for note in r.data.get("notes", []):
                        print(f"note: {note}", file=sys.stderr)
        return 0 if all(r.ok for r in results) else 1


def run_tool_command(args, app: App) -> int:
    import dataclasses

    from visionloop.cli.progress import TokenStream, streams_tokens
    from visionloop.loop import wait
    from visionloop.tools import run_tool

    tool = app.registry.tool(args.tool)
    values = tool_values(args, tool)
    each = values.get(tool.each) if tool.each else None
    if app.json and isinstance(each, list) and len(each) > 1:
        # `caption *.jpg --json`: one call per file, so each line is printed as it completes
        # (a tool that batches its model calls, `caption`, gets them 16 at a time)
        step = 16 if tool.run_batch is not None else 1

        def one_by_one():
            for start in range(0, len(each), step):
                yield from app.loop.call(ToolCall(tool.name, {**values, tool.each: each[start:start + step]}))

        return app.print_results(one_by_one())
    if not streams_tokens(tool, values, app.json):
        return app.print_results(app.loop.call(ToolCall(tool.name, values)))
    tokens = TokenStream()  # see/caption on a terminal: the answer as LLaVA writes it
    try:
        results = wait(app.loop, app.loop.submit(
            lambda ctx: run_tool(tool, values, dataclasses.replace(ctx, on_text=tokens))))
    finally:
        tokens.ended()
    if tokens.streamed:  # shown already: the rest of the result (images, notes, errors) only
        results = [dataclasses.replace(r, text="") for r in results]
    return app.print_results(results)


def build_parser(registry) -> argparse.ArgumentParser:
    parser = _Parser(prog="visionloop", parents=[common_options()],
                     description="A local agent for images: LLaVA describes, Stable Diffusion draws, "
                                 "workflows chain them.")
    parser.add_argument("--version", action="version", version=f"visionloop {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        importlib.import_module(name).add_commands(sub, common_options)
    for tool in sorted(registry.tools.values(), key=lambda t: t.name):
        _add_tool_command(sub, tool)
    return parser


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.DEBUG if verbose >= 2 else logging.INFO if verbose == 1 else logging.ERROR if quiet else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    # third-party noise stays down unless asked for
    for noisy in ("transformers", "diffusers", "huggingface_hub", "PIL", "filelock", "watchdog", "httpx"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose >= 2 else logging.ERROR)
    if verbose < 2:
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        # huggingface_hub sets up its own stderr handler on import; its level comes from here
        os.environ.setdefault("HF_HUB_VERBOSITY", "error")


def _refuse_blank(args, names) -> None:
    """`--out ""` must not quietly become the default folder (nor `--config ""` the default file)."""
    for name in names:
        value = getattr(args, name, None)
        if isinstance(value, str) and not value.strip():
            raise UsageError(f"--{name}: must not be empty")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Phase 1: the flags that decide which config and plugins to load.
    _ARGV.set(argv)
    pre = _Parser(prog="visionloop", add_help=False)
    pre.add_argument("--config")
    pre.add_argument("--profile")
    pre.add_argument("--device")
    pre.add_argument("--dtype")
    pre.add_argument("-v", "--verbose", action="count", default=0)
    pre.add_argument("--quiet", action="store_true")
    early, _ = pre.parse_known_args(argv)
    _setup_logging(early.verbose, early.quiet)
    app = None
    try:
        _refuse_blank(early, ("config", "profile", "device", "dtype"))  # "" would mean "the default"
        from visionloop.config import load_config
        from visionloop.plugins import load_registry, run_startup

        config = load_config(early.config, early.profile, early.device, early.dtype)
        registry = load_registry(config.plugins.paths)
        run_startup(registry, config)
        # Phase 2: the full command line, with one sub-command per tool.
        parser = build_parser(registry)
        args = parser.parse_args(argv)
        _refuse_blank(args, ("out",))
        if getattr(args, "quiet", False) and not early.verbose:
            # `-q` is only known after the full parse (`see` claims -q for its question)
            logging.getLogger().setLevel(logging.ERROR)
        for name, error in registry.broken.items():
            log.warning("plugin %s is broken and was skipped: %s", name, error)
        if not getattr(args, "command", None):  # a usage error: the help goes where errors go
            parser.print_help(sys.stderr)  # (stdout stays empty, or valid JSON under --json)
            return 2
        app = App(args=args, config=config, registry=registry)
        return int(args.handler(args, app) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except VisionloopError as exc:
        if early.verbose:
            log.exception("error")
        print(f"error: {error_lines(exc)}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # `visionloop tools | head`: the reader left; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        if app is not None and app._loop is not None:  # every command that made a loop, one-shot or not
            try:
                app._loop.close()
            except KeyboardInterrupt:  # a second Ctrl-C while the cancelled job winds down
                print("interrupted", file=sys.stderr)
