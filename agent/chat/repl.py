"""The terminal front end of the chat: a prompt_toolkit session, or plain lines when stdin is
not a terminal.

In a terminal: persistent history (under the user data folder), completion of `/commands`,
tool names, `#N` and file paths, multi-line input (end a line with `\\` or press Alt-Enter
for a new line), Ctrl-C at the prompt clears the line and during a job cancels the job (the
loop stops it at its next token or denoising step), Ctrl-D or `/quit` leaves. Answers stream
token by token, printed above the prompt.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs
from prompt_toolkit import PromptSession
from prompt_toolkit.completion import Completer, Completion, PathCompleter
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory, InMemoryHistory
from prompt_toolkit.key_binding import KeyBindings
from prompt_toolkit.key_binding.bindings.mouse import load_mouse_bindings
from prompt_toolkit.keys import Keys
from prompt_toolkit.patch_stdout import patch_stdout

from visionloop.chat.engine import CHAT_COMMANDS, MAX_LINE, Chat
from visionloop.chat.slash_commands import ALIASES
from visionloop.errors import VisionloopError
from visionloop.paths import user_path

PROMPT = "visionloop> "


def history_path() -> Path:
    """Where the chat's input history lives (platformdirs' user data folder)."""
    return Path(platformdirs.user_data_dir("visionloop")) / "chat_history"


class ChatCompleter(Completer):
    """`/commands` and tool names at the start of a line, `#N` anywhere, file paths for
    words that look like paths (and for every word after `/image`, `/open` and the tools),
    workflow names after `/run`."""

    def __init__(self, chat: Chat):
        self.chat = chat
        self.paths = PathCompleter(expanduser=True)

    def commands(self) -> list[str]:
        names = [c for c in CHAT_COMMANDS] + [f"/{t}" for t in self.chat.registry.tools] + [f"/{a}" for a in ALIASES]
        return sorted(set(names))

    def workflows(self) -> list[str]:
        from visionloop.workflows.validate import SUFFIXES  # here: the workflows package loads its engine

        try:
            folder = user_path(self.chat.config.workflows)
            return sorted(p.stem for p in folder.iterdir() if p.suffix in SUFFIXES) if folder.is_dir() else []
        except (VisionloopError, OSError):  # completing must never end the prompt
            return []

    def get_completions(self, document, complete_event):
        text = document.text_before_cursor
        word = document.get_word_before_cursor(WORD=True)
        if text.startswith("/") and " " not in text:
            for name in self.commands():
                if name.startswith(text):
                    yield Completion(name, start_position=-len(text))
            return
        if word.startswith("#"):
            for pic in self.chat.session.images:
                if f"#{pic.number}".startswith(word):
                    yield Completion(f"#{pic.number}", start_position=-len(word), display_meta=pic.path)
            return
        if text.startswith("/run ") and text.count(" ") == 1:
            for name in self.workflows():
                if name.startswith(word):
                    yield Completion(name, start_position=-len(word))
            return
        slash = text.startswith("/") and not word.startswith("-")
        if slash or word.startswith(("~", "/", "./", "../")):
            yield from self.paths.get_completions(Document(word, len(word)), complete_event)


def key_bindings() -> KeyBindings:
    kb = KeyBindings()

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
                         key_bindings=key_bindings(), complete_while_typing=False,
                         prompt_continuation=lambda width, line, wrap: "." * (width - 1) + " ", **kwargs)


def run_terminal(chat: Chat, history_file: Path | None = None, **kwargs) -> int:
    """The interactive loop. `kwargs` go to `PromptSession` (tests pass a pipe input)."""
    session = make_prompt_session(chat, history_file, **kwargs)
    chat.out.say("visionloop chat: type a message or /help; Ctrl-C cancels a job, Ctrl-D leaves.", "welcome")
    for pic in chat.session.images:
        chat.out.say(f"#{pic.number} {pic.path}", "image")
    with patch_stdout(raw=True):
        while True:
            try:
                line = session.prompt(PROMPT)
            except KeyboardInterrupt:  # at the prompt: drop the line, keep the session
                continue
            except EOFError:
                break
            try:
                if not chat.handle(line):
                    break
            except KeyboardInterrupt:  # between a job's end and the next prompt
                chat.out.say("cancelled", "cancelled")
    return 0


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
