"""The terminal front end of the chat: a prompt_toolkit session, or plain lines when stdin is
not a terminal.

In a terminal: persistent history (under the user data folder), completion of `/commands`,
tool names, a command's options and their values, `#N` and file paths, multi-line input (end a
line with `\\` or press Alt-Enter for a new line). The prompt stays up while a job runs, so the
next message can be typed meanwhile; answers stream token by token above it (`live`). Ctrl-C
cancels the chat's job in hand (the loop stops it at its next token or denoising step), or with
none clears the line; Ctrl-D (once the lines entered are answered) or `/quit` leaves.
"""

from __future__ import annotations

import argparse
import os
import queue
import threading
from pathlib import Path

import platformdirs
from prompt_toolkit import PromptSession
from prompt_toolkit.completion import Completer, Completion, PathCompleter
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory, InMemoryHistory
from prompt_toolkit.key_binding import KeyBindings
from prompt_toolkit.key_binding.bindings.mouse import load_mouse_bindings
from prompt_toolkit.keys import Keys

from visionloop.chat.engine import CHAT_COMMANDS, MAX_LINE, Chat
from visionloop.chat.live import live_output
from visionloop.chat.output import shorten_words, visible
from visionloop.chat.slash_commands import ALIASES, tool_parser
from visionloop.errors import VisionloopError
from visionloop.paths import user_path

PROMPT = "visionloop> "


def history_path() -> Path:
    """Where the chat's input history lives (platformdirs' user data folder)."""
    return Path(platformdirs.user_data_dir("visionloop")) / "chat_history"


class ChatCompleter(Completer):
    """`/commands` and tool names at the start of a line, a command's options after `-` (the
    CLI's own, from the tool's inputs) and their choices, `#N` anywhere (`image=#N` too), file paths
    for words that look like paths (and for every word after `/image`, `/open` and the tools),
    workflow names after `/run`."""

    def __init__(self, chat: Chat):
        self.chat = chat
        self.paths = PathCompleter(expanduser=True)

    def commands(self) -> list[str]:
        names = [c for c in CHAT_COMMANDS] + [f"/{t}" for t in self.chat.registry.tools] + [f"/{a}" for a in ALIASES]
        return sorted(set(names))

    def workflows(self) -> list[str]:
        from visionloop.workflows.library import SUFFIXES  # here: the workflows package loads its engine

        try:
            folder = user_path(self.chat.config.workflows)
            return sorted(p.stem for p in folder.iterdir() if p.suffix in SUFFIXES) if folder.is_dir() else []
        except (VisionloopError, OSError):  # completing must never end the prompt
            return []

    def options(self, command: str) -> dict[str, argparse.Action]:
        """The options `command` takes, as `/command --help` lists them: flag -> its action."""
        if command == "/run":
            from visionloop.chat.run_command import run_parser

            parser = run_parser()
        else:
            tool = self.chat.registry.tools.get(ALIASES.get(command[1:], command[1:]))
            if tool is None:
                return {}
            parser = tool_parser(tool)
        return {flag: action for action in parser._actions for flag in action.option_strings}

    def get_completions(self, document, complete_event):
        text = document.text_before_cursor
        word = document.get_word_before_cursor(WORD=True)
        if text.startswith("/") and " " not in text:
            for name in self.commands():
                if name.startswith(text):
                    yield Completion(name, start_position=-len(text))
            return
        name, eq, value = word.rpartition("=")
        if (value if eq else word).startswith("#"):  # `#2`, and `image=#2` for /run
            ref = value if eq else word
            for pic in self.chat.session.images:
                if f"#{pic.number}".startswith(ref):
                    yield Completion(f"#{pic.number}", start_position=-len(ref), display_meta=pic.path)
            return
        if text.startswith("/run ") and text.count(" ") == 1:
            for name in self.workflows():
                if name.startswith(word):
                    yield Completion(name, start_position=-len(word))
            return
        if text.startswith("/"):
            options = self.options(text.split(maxsplit=1)[0].lower())
            if word.startswith("-") and "=" not in word:
                for flag, action in options.items():
                    if flag.startswith(word):
                        yield Completion(flag, start_position=-len(word), display_meta=action.help or "")
                return
            before = text[:len(text) - len(word)].split()
            action = options.get(before[-1]) if before else None
            if action is not None and action.choices:  # `/caption --detail l`: the option's values
                for choice in action.choices:
                    if str(choice).startswith(word):
                        yield Completion(str(choice), start_position=-len(word))
                return
        slash = text.startswith("/") and not word.startswith("-")
        if slash or word.startswith(("~", "/", "./", "../")):
            yield from self.paths.get_completions(Document(word, len(word)), complete_event)


def key_bindings(chat: Chat | None = None) -> KeyBindings:
    kb = KeyBindings()

    if chat is not None:
        @kb.add("c-c")
        @kb.add(Keys.SIGINT)
        def _(event):
            """Ctrl-C cancels the chat's job in hand (what is typed stays); with none, drops the line."""
            if not chat.cancel():
                event.current_buffer.reset()

    @kb.add("enter")
    def _(event):
        buf = event.current_buffer
        if buf.document.text_before_cursor.endswith("\\"):  # a continued line
            buf.delete_before_cursor(1)
            buf.insert_text("\n")
        else:
            buf.validate_and_handle()

    @kb.add("escape", "enter")
    def _(event):
        event.current_buffer.insert_text("\n")

    # prompt_toolkit reads any `ESC [ digits ; ... m` (a colour code pasted or typed, e.g.
    # ESC[31m) as a mouse report, and its handler fails on one that is not: "Unhandled exception
    # in event loop" and a "Press ENTER" that eats the next line. A real report still goes through.
    mouse = load_mouse_bindings().get_bindings_for_keys((Keys.Vt100MouseEvent,))

    @kb.add(Keys.Vt100MouseEvent)
    def _(event):
        try:
            for binding in mouse[-1:]:
                binding.handler(event)
        except (ValueError, KeyError, IndexError, TypeError):  # not a mouse report: dropped
            pass

    return kb


class _Bounded:
    """A history that keeps no line longer than the chat reads (a pasted blob is refused, not kept)."""

    def append_string(self, string: str) -> None:
        if len(string) <= MAX_LINE:
            super().append_string(string)


class _FileHistory(_Bounded, FileHistory):
    pass


class _MemoryHistory(_Bounded, InMemoryHistory):
    pass


def make_prompt_session(chat: Chat, history_file: Path | None = None, **kwargs) -> PromptSession:
    history = _MemoryHistory()
    path = history_file or history_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        history = _FileHistory(str(path))
    except OSError:  # a read-only home must not stop the chat; history is then per session
        pass
    return PromptSession(history=history, completer=ChatCompleter(chat), multiline=True,
                         key_bindings=key_bindings(chat), complete_while_typing=False,
                         prompt_continuation=lambda width, line, wrap: "." * (width - 1) + " ", **kwargs)


def run_terminal(chat: Chat, history_file: Path | None = None, **kwargs) -> int:
    """The interactive loop. `kwargs` go to `PromptSession` (tests pass a pipe input).

    The prompt stays up for the whole conversation: a line entered is answered on another thread
    (`answer_lines`, one line after another), so the next one can be typed while a job runs, and
    whatever is printed meanwhile appears above the input line (`visionloop.chat.live`)."""
    session = make_prompt_session(chat, history_file, **kwargs)
    chat.out.say("visionloop chat: type a message or /help; Ctrl-C cancels a job, Ctrl-D leaves.", "welcome")
    for pic in chat.session.images:
        chat.out.say(f"#{pic.number} {pic.path}", "image")
    lines: queue.Queue = queue.Queue()
    done = threading.Event()

    def accept(buffer) -> bool:  # Enter: the line stays on screen above the prompt, and is answered in turn
        echo(buffer.text)
        lines.put(buffer.text)
        return False  # clear the input line for the next message

    session.default_buffer.accept_handler = accept
    chat.in_terminal = lambda job: in_terminal(session.app, job)  # `e` on a plan: $EDITOR gets the terminal
    with live_output(session.app) as live:
        answering = threading.Thread(target=answer_lines, args=(chat, lines, session.app, done),
                                     name="visionloop-chat", daemon=True)
        answering.start()
        while not done.is_set():
            try:  # returns when the chat leaves (/quit); Ctrl-D raises EOFError
                session.prompt(live.message(PROMPT), pre_run=lambda: done.is_set() and _stop(session.app))
            except EOFError:  # Ctrl-D: leave once the lines already entered are answered
                break
            except KeyboardInterrupt:  # a Ctrl-C outside the prompt's own handling: the same as in it
                chat.cancel()
        lines.put(None)
        while True:  # an Event, not join(): a join that Ctrl-C interrupts may leave the thread marked ended
            try:
                if done.wait(0.1):
                    break
            except KeyboardInterrupt:  # leaving, a job still running: Ctrl-C cancels it
                chat.cancel()
    return 0


def in_terminal(app, job):
    """Run `job()` (from the answering thread) with the terminal handed over: the prompt is put away
    while it runs (an editor on a plan), and comes back after."""
    import asyncio

    from prompt_toolkit.application import run_in_terminal

    if not app.is_running or app.loop is None:
        return job()

    async def handed_over():
        return await run_in_terminal(job, in_executor=True)

    return asyncio.run_coroutine_threadsafe(handed_over(), app.loop).result()


def echo(text: str) -> None:
    """A line entered, printed above the prompt as it was typed (a pasted blob: its start and length)."""
    if len(text) > MAX_LINE:
        text = f"{text[:60]}... ({len(text):,} characters)"
    shown = visible(shorten_words(text)).split("\n")
    more = "." * (len(PROMPT) - 1) + " "
    print("\n".join([PROMPT + shown[0], *(more + line for line in shown[1:])]), flush=True)


def answer_lines(chat: Chat, lines: queue.Queue, app, done: threading.Event) -> None:
    """Answer the lines entered, in order, until `/quit` or the end (None); then end the prompt."""
    try:
        while (line := lines.get()) is not None:
            if not chat.handle(line):
                break
    finally:
        done.set()
        loop = app.loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(_stop, app)
            except RuntimeError:  # the prompt's loop is already closed
                pass


def _stop(app) -> None:
    if app.is_running and not app.is_done:
        app.exit(result="")


def run_lines(chat: Chat, stream) -> int:
    """Not a terminal: one message per line, plain text (or JSON lines) out. A line longer than
    the chat reads is skipped without holding it in memory, and a byte that is not valid text
    becomes U+FFFD: neither ends the chat."""
    if hasattr(stream, "reconfigure"):
        stream.reconfigure(errors="replace")
    while line := stream.readline(MAX_LINE + 1):
        if len(line) > MAX_LINE and not line.endswith("\n"):
            length = len(line)
            while line and not line.endswith("\n"):  # the rest of the line: counted, dropped
                line = stream.readline(MAX_LINE + 1)
                length += len(line)
            chat.refuse_long_line(length - line.endswith("\n"))
            continue
        if not chat.handle(line.rstrip("\n")):
            break
    return 0


def interactive(stdin, stdout) -> bool:
    return stdin.isatty() and stdout.isatty() and os.environ.get("TERM") != "dumb"
