"""Strict YAML loading that remembers where every value came from.

Used for `config.yaml` and for workflow files. On top of `yaml.SafeLoader` (nothing is ever
constructed from a `!!python/...` tag) it rejects duplicate keys (PyYAML silently keeps the
last one), aliases (billion-laughs), files over 1 MB and nesting deeper than 50, and it maps
every path in the document (`("steps", 1, "with", "strength")`) to its line so that schema
errors can say `file:line: steps[1].with.strength: ...`.
"""

from __future__ import annotations

import difflib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 1_000_000
MAX_DEPTH = 50


class YamlProblem(Exception):
    """A YAML document cannot be read; `line` is 1-based (0 when unknown); `path` is where in
    the document it is, when known (a duplicate key: the mapping that holds it)."""

    def __init__(self, line: int, message: str, path: tuple = ()):
        self.line = line
        self.message = message
        self.path = tuple(path)
        super().__init__(f"line {line}: {message}")


class _StrictLoader(yaml.SafeLoader):
    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise YamlProblem(event.start_mark.line + 1, "aliases (*name) are not allowed")
        if self.check_event(yaml.MappingStartEvent, yaml.SequenceStartEvent):
            self._depth = getattr(self, "_depth", 0) + 1
            if self._depth > MAX_DEPTH:
                raise YamlProblem(self.peek_event().start_mark.line + 1, f"nested deeper than {MAX_DEPTH} levels")
            try:
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1
        return super().compose_node(parent, index)


def _check_duplicates(node: yaml.Node, path: tuple = ()) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key, value in node.value:
            k = key.value if isinstance(key, yaml.ScalarNode) else id(key)
            line = key.start_mark.line + 1
            if k in seen:
                raise YamlProblem(line, f"duplicate key {k!r} (first on line {seen[k]})", path)
            seen[k] = line
            _check_duplicates(value, path + (k,))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check_duplicates(item, path + (i,))


def _index_lines(node: yaml.Node, path: tuple, lines: dict[tuple, int]) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            sub = path + (key.value,)
            lines[sub] = key.start_mark.line + 1
            _index_lines(value, sub, lines)
            lines[sub] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index_lines(item, path + (i,), lines)


@dataclass
class YamlDoc:
    """A parsed document, its source name, and the line of every path in it."""

    data: Any
    source: str
    lines: dict[tuple, int] = field(default_factory=dict)

    def line(self, path) -> int:
        """The line of `path`, or of its nearest ancestor that exists (1 for the root)."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), 1)


def parse_yaml(text: str, source: str = "<string>") -> YamlDoc:
    """Parse `text`; raise `YamlProblem` for syntax errors, tags, duplicates, aliases, limits."""
    if len(text.encode("utf-8", "replace")) > MAX_BYTES:
        raise YamlProblem(0, f"file is larger than {MAX_BYTES // 1000} kB")
    try:
        loader = _StrictLoader(text)
    except yaml.reader.ReaderError as exc:  # a NUL or other control character: checked before parsing
        line = text.count("\n", 0, exc.position) + 1 if isinstance(exc.position, int) else 0
        raise YamlProblem(line, f"character {exc.character:#06x} is not allowed in YAML "
                                "(is this a binary file?)") from None
    try:
        node = loader.get_single_node()
        if node is None:
            return YamlDoc(data=None, source=source, lines={(): 1})
        _check_duplicates(node)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        problem = exc.problem or str(exc)
        if "could not determine a constructor for the tag" in problem:
            problem = problem.replace("could not determine a constructor for the tag", "tag not allowed:")
            problem += " (YAML tags are never executed; remove it)"
        elif problem == "but found another document":
            problem = "a second YAML document ('---'): a file holds one document"
        elif "'\\t'" in problem:
            problem += " (indent with spaces: YAML does not allow tabs there)"
        raise YamlProblem(line, problem) from None
    except yaml.YAMLError as exc:
        raise YamlProblem(0, str(exc)) from None
    finally:
        loader.dispose()
    lines: dict[tuple, int] = {}
    _index_lines(node, (), lines)
    return YamlDoc(data=data, source=source, lines=lines)


def read_limited(path: str | Path, limit: int | None = None) -> bytes:
    """The bytes of the regular file `path`, reading at most `limit` + 1 (default `MAX_BYTES`)
    whatever size the file reports (/proc files say 0; a device never ends). A folder, a FIFO,
    a device, an unreadable or too large file is a `YamlProblem` (line 0) saying so in one line;
    `FileNotFoundError` and other `OSError`s are left to the caller."""
    limit = MAX_BYTES if limit is None else limit
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)  # a FIFO must not block open()
    try:
        fd = os.open(path, flags)
    except IsADirectoryError:
        raise YamlProblem(0, "is a folder, not a file") from None
    except PermissionError:
        raise YamlProblem(0, "permission denied") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise YamlProblem(0, "is a folder, not a file")
        if not stat.S_ISREG(mode):
            kinds = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"),
                     (stat.S_ISSOCK, "a socket"))
            kind = next((name for test, name in kinds if test(mode)), "something else")
            raise YamlProblem(0, f"is {kind}, not a regular file")
        chunks, size = [], 0
        while size <= limit:
            block = os.read(fd, min(1 << 20, limit + 1 - size))
            if not block:
                break
            chunks.append(block)
            size += len(block)
    except PermissionError:
        raise YamlProblem(0, "permission denied") from None
    finally:
        os.close(fd)
    if size > limit:
        raise YamlProblem(0, f"file is larger than {limit // 1000} kB")
    return b"".join(chunks)


def load_yaml(path: str | Path) -> YamlDoc:
    """Read (at most `MAX_BYTES`, see `read_limited`) and parse a file. `FileNotFoundError`,
    other `OSError`s and `UnicodeDecodeError` are left to the caller."""
    return parse_yaml(read_limited(path).decode("utf-8"), str(path))


def did_you_mean(word, choices) -> str:
    """` (did you mean 'x'?)` for the closest of `choices` to a mistyped `word`, else ""."""
    match = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


def format_loc(loc) -> str:
    """`("steps", 1, "with", "strength")` -> `steps[1].with.strength`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top)"
