"""Fixtures and helpers shared by the chat tests (registered in conftest.py as a pytest plugin,
so that no test module imports another): a chat on the shared tiny-model loop with a test
plugin (`chat_loop`, `plugin`, `Talk`, `talk`, `pics`), a session with two images
(`two_images`), and what a chat subprocess needs (`env`, `config_with`, `SLOW_PLUGIN`)."""

from __future__ import annotations

import io
import shutil
import textwrap
import threading
import time

import pytest
import yaml

from visionloop.chat import Chat, Output
from visionloop.chat.session import Session
from visionloop.errors import Cancelled
from visionloop.hookspecs import hookimpl
from visionloop.tools import Input, Tool, ToolResult


class ChatTestPlugin:
    """A slow tool (for Ctrl-C), a tool whose output reads like a command, and a router that
    only watches what it is given."""

    def __init__(self):
        self.seen: list[str] = []
        self.slow_stopped = threading.Event()

    @hookimpl
    def register_tools(self, register):
        def slow(ctx, seconds=30.0):
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                if ctx.cancel.is_set():
                    self.slow_stopped.set()
                    raise Cancelled("cancelled")
                time.sleep(0.02)
            return ToolResult(tool="slow", text="finished")

        def parrot(ctx, text="draw a red dragon"):
            return ToolResult(tool="parrot", text=text)

        register(Tool("slow", "takes its time", [Input("seconds", "float", 30.0)], slow))
        register(Tool("parrot", "says what it is told", [Input("text", "text", positional=True)], parrot))

    @hookimpl
    def route_message(self, message, session, tools):
        self.seen.append(message)
        return None


@pytest.fixture(scope="module")
def plugin():
    return ChatTestPlugin()


@pytest.fixture(scope="module")
def chat_loop(tiny_config, plugin, tmp_path_factory):
    from visionloop.context import Context
    from visionloop.loop import Loop
    from visionloop.plugins import load_registry

    registry = load_registry(extra=[plugin])
    lp = Loop(registry, Context.create(tiny_config, tmp_path_factory.mktemp("chat-out")))
    yield lp
    lp.close()


class Talk:
    """A chat with captured output: `say(line)` returns what it printed."""

    def __init__(self, loop, json_mode=False, stream=False):
        self.out, self.err = io.StringIO(), io.StringIO()
        self.chat = Chat(loop.registry, loop, output=Output(json_mode, stream, self.out, self.err))

    def say(self, line: str) -> tuple[str, str]:
        o, e = self.out.tell(), self.err.tell()
        assert self.chat.handle(line) is True
        return self.out.getvalue()[o:], self.err.getvalue()[e:]


@pytest.fixture
def talk(chat_loop):
    return Talk(chat_loop)


@pytest.fixture
def pics(tmp_path, example_image):
    paths = []
    for name in ("one.png", "two.png"):
        shutil.copy(example_image, tmp_path / name)
        paths.append(str(tmp_path / name))
    return paths


@pytest.fixture
def two_images(tmp_path, example_image):
    second = tmp_path / "second.png"
    shutil.copy(example_image, second)
    session = Session()
    session.attach(str(example_image))
    session.attach(str(second))
    return session


SLOW_PLUGIN = textwrap.dedent('''
    import time
    from visionloop.errors import Cancelled
    from visionloop.hookspecs import hookimpl
    from visionloop.tools import Input, Tool, ToolResult

    def slow(ctx, seconds=30.0):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if ctx.cancel.is_set():
                raise Cancelled("cancelled")
            time.sleep(0.02)
        return ToolResult(tool="slow", text="finished")

    @hookimpl
    def register_tools(register):
        register(Tool("slow", "takes its time", [Input("seconds", "float", 30.0)], slow))
''')


@pytest.fixture
def env(tmp_path):
    """History and watch ledgers under the test's folder, not the user's."""
    return {"XDG_DATA_HOME": str(tmp_path / "data"), "VISIONLOOP_STATE_DIR": str(tmp_path / "state"),
            "PROMPT_TOOLKIT_NO_CPR": "1", "TERM": "xterm"}


def config_with(session_config_file, tmp_path, **extra) -> str:
    data = yaml.safe_load(session_config_file.read_text())
    data.update(extra)
    path = tmp_path / "chat-config.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)
