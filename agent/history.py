"""The history: one row per tool call, whichever face made it (CLI, chat, watcher, workflows,
server), in one sqlite database in the user data folder.

`run_tool` calls `record()` after each call; nothing here may fail a tool call, so `record`
is wrapped there and every problem is logged, never raised. `history: false` in the config
turns it off. `visionloop logs` and the server's `/api/runs` read it back with `rows()`.

The database lives at `$VISIONLOOP_DATA_DIR/history.sqlite`, else in the platform's user data
folder (`~/.local/share/visionloop/history.sqlite` on Linux). It is opened in WAL mode, so the
server reading it and a CLI writing to it at the same time never block each other for long.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

log = logging.getLogger(__name__)

FILE = "history.sqlite"
SCHEMA_VERSION = 1
BUSY_MS = 1000  # a write waits at most this long for another process's write
MAX_TEXT = 100_000  # characters of a result's text kept (a runaway answer must not bloat the file)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,           -- UTC, ISO 8601, when the call ended
    tool TEXT NOT NULL,
    args TEXT NOT NULL,           -- JSON: the arguments the tool ran with (image paths absolute)
    text TEXT NOT NULL DEFAULT '',
    images TEXT NOT NULL DEFAULT '[]',  -- JSON list of absolute paths
    seed INTEGER,
    model TEXT,
    seconds REAL,
    error TEXT,
    run TEXT,                     -- the workflow run folder the call belongs to, if any
    out_dir TEXT,                 -- the folder it wrote into
    face TEXT,                    -- who asked, when known: "server", ...
    data TEXT                     -- JSON: the result's full data
);
CREATE INDEX IF NOT EXISTS calls_tool ON calls(tool, id);
CREATE INDEX IF NOT EXISTS calls_out ON calls(out_dir, id);
"""

COLUMNS = ("id", "time", "tool", "args", "text", "images", "seed", "model", "seconds", "error", "run", "out_dir",
           "face", "data")

#: who is asking, for the `face` column (the server sets it around its jobs)
_face: contextvars.ContextVar[str | None] = contextvars.ContextVar("visionloop_face", default=None)
_local = threading.local()  # ids recorded on this thread while `capture()` is active


def path() -> Path:
    """Where the history lives: `$VISIONLOOP_DATA_DIR`, else the user data folder."""
    env = os.environ.get("VISIONLOOP_DATA_DIR")
    if env and env.strip():
        return Path(os.path.expanduser(env)) / FILE
    import platformdirs

    return Path(platformdirs.user_data_dir("visionloop")) / FILE


class _Store:
    """One shared connection per database file, used under a lock from any thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.conn: sqlite3.Connection | None = None
        self.where: Path | None = None

    def connection(self, where: Path, create: bool) -> sqlite3.Connection | None:
        if self.conn is not None and self.where == where:
            return self.conn
        if self.conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self.conn.close()
            self.conn, self.where = None, None
        if not where.exists():
            if not create:
                return None
            where.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(where), timeout=BUSY_MS / 1000, check_same_thread=False, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise sqlite3.DatabaseError(f"{where}: history schema {version} is newer than this visionloop "
                                            f"({SCHEMA_VERSION})")
            if version < SCHEMA_VERSION:
                conn.executescript(_SCHEMA + f"PRAGMA user_version = {SCHEMA_VERSION};")
        except BaseException:
            conn.close()
            raise
        self.conn, self.where = conn, where
        return conn


_store = _Store()


def enabled(ctx) -> bool:
    config = getattr(ctx, "config", None)
    return bool(getattr(config, "history", True))


@contextlib.contextmanager
def face(name: str) -> Iterator[None]:
    """Calls made inside are recorded as made by `name` (e.g. "server")."""
    token = _face.set(name)
    try:
        yield
    finally:
        _face.reset(token)


@contextlib.contextmanager
def capture() -> Iterator[list[int]]:
    """The ids of the rows recorded on this thread inside the block (the server links a job to
    its record this way)."""
    ids: list[int] = []
    before = getattr(_local, "ids", None)
    _local.ids = ids
    try:
        yield ids
    finally:
        _local.ids = before


def _jsonable(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def record(tool: str, args: dict, result, ctx) -> int | None:
    """Add one call's row; the row id, or None when the history is off. May raise (sqlite,
    a disk that is full): the caller (`run_tool`) swallows it."""
    if not enabled(ctx):
        return None
    out_dir = getattr(ctx, "out_dir", None)
    out_dir = os.path.realpath(out_dir) if out_dir is not None else None  # absolute: the server compares it
    run = None
    if out_dir is not None and os.path.exists(os.path.join(out_dir, "manifest.json")):  # a workflow step's run
        run = out_dir
    data = result.data if isinstance(result.data, dict) else {}
    seed = data.get("seed")
    row = (now(), tool, _jsonable({k: v for k, v in args.items() if v is not None}), (result.text or "")[:MAX_TEXT],
           _jsonable([os.path.realpath(p) for p in result.images]),
           seed if isinstance(seed, int) and abs(seed) < 2**63 else None,
           str(data.get("model_id") or data.get("model") or "") or None, data.get("seconds"), result.error, run,
           out_dir, _face.get(), _jsonable(data))
    with _store.lock:
        conn = _store.connection(path(), create=True)
        cur = conn.execute("INSERT INTO calls (time, tool, args, text, images, seed, model, seconds, error, run, "
                           "out_dir, face, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
        row_id = cur.lastrowid
    ids = getattr(_local, "ids", None)
    if ids is not None:
        ids.append(row_id)
    return row_id


def _decode(row: tuple) -> dict:
    item = dict(zip(COLUMNS, row))
    for key, empty in (("args", {}), ("images", []), ("data", {})):
        try:
            item[key] = json.loads(item[key]) if item[key] else empty
        except ValueError:
            item[key] = empty
    return item


def rows(limit: int | None = 20, tool: str | None = None, search: str | None = None, out_dir: str | None = None,
         standalone: bool = False, ids: list[int] | None = None, since_id: int = 0) -> list[dict]:
    """Rows, newest first. `search`: every word must appear in the tool, arguments, text or error
    (case-insensitive); `out_dir`: written into that folder; `standalone`: not a workflow step."""
    where, params = ["id > ?"], [since_id]
    if tool:
        where.append("tool = ?")
        params.append(tool)
    for word in (search or "").split():
        where.append("(tool || ' ' || args || ' ' || text || ' ' || coalesce(error, '')) LIKE ? ESCAPE '\\'")
        params.append("%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
    if out_dir is not None:
        where.append("out_dir = ?")
        params.append(out_dir)
    if standalone:
        where.append("run IS NULL")
    if ids is not None:
        where.append(f"id IN ({', '.join('?' * len(ids))})" if ids else "0")
        params.extend(ids)
    sql = f"SELECT {', '.join(COLUMNS)} FROM calls WHERE {' AND '.join(where)} ORDER BY id DESC"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(int(limit))
    with _store.lock:
        conn = _store.connection(path(), create=False)
        if conn is None:
            return []
        found = conn.execute(sql, params).fetchall()
    return [_decode(r) for r in found]


def get(row_id: int) -> dict | None:
    found = rows(limit=1, ids=[row_id])
    return found[0] if found else None


def close() -> None:
    """Close the shared connection (tests; a process that ends closes it anyway)."""
    with _store.lock:
        if _store.conn is not None:
            with contextlib.suppress(sqlite3.Error):
                _store.conn.close()
        _store.conn, _store.where = None, None
