"""The ledger's tables, its schema version, and the migration of older ledgers.

Version 2 keys a file by the sha256 of its bytes, the rule name and the rule's fingerprint
(the workflow's content and the input it fills), so that the same folder watched with another
workflow runs every file again instead of skipping it as done. A version-1 ledger (keyed by
sha256 and rule only) is migrated in place, in one transaction: its rows get the fingerprint
`legacy`, which the first rule of that name to open the ledger adopts as its own (the files it
did before the upgrade stay done). A ledger from a newer visionloop is refused, never rewritten.

Paths are stored as text; a name holding bytes that are not UTF-8 (Linux allows any bytes) is
stored as those bytes (a BLOB, which sqlite keeps as it is in a TEXT column), so it round-trips
(`to_db` / `from_db`). Messages that may quote such a name are stored escaped (`to_text`).
"""

from __future__ import annotations

import os
import sqlite3

VERSION = 2
LEGACY = "legacy"  # the fingerprint of rows migrated from version 1
STATES = ("queued", "running", "done", "failed", "duplicate")

_STATE_CHECK = "CHECK (state IN ('queued', 'running', 'done', 'failed', 'duplicate'))"

_TABLES = f"""
CREATE TABLE IF NOT EXISTS files (
    sha TEXT NOT NULL, rule TEXT NOT NULL, fp TEXT NOT NULL, path TEXT NOT NULL, state TEXT NOT NULL {_STATE_CHECK},
    attempts INTEGER NOT NULL DEFAULT 0, redone INTEGER NOT NULL DEFAULT 0,
    error TEXT, step TEXT, run_dir TEXT, pid INTEGER, updated REAL NOT NULL,
    PRIMARY KEY (sha, rule, fp));
CREATE TABLE IF NOT EXISTS duplicates (
    path TEXT NOT NULL, rule TEXT NOT NULL, fp TEXT NOT NULL, sha TEXT NOT NULL, updated REAL NOT NULL,
    PRIMARY KEY (path, rule, fp, sha));
-- what a scan has already looked at (and the sha it had), so unchanged files are not hashed again
CREATE TABLE IF NOT EXISTS seen (
    path TEXT NOT NULL, rule TEXT NOT NULL, fp TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    sha TEXT NOT NULL, PRIMARY KEY (path, rule, fp));
-- hashes of files the watcher wrote, so a re-dropped output is never taken as an input
CREATE TABLE IF NOT EXISTS outputs (sha TEXT PRIMARY KEY);
"""


_V1_REQUIRED = {"sha", "rule", "path", "state", "updated"}
_V1_OPTIONAL = {"attempts": "0", "redone": "0", "error": "NULL", "step": "NULL", "run_dir": "NULL", "pid": "NULL"}


def to_db(path) -> str | bytes | None:
    """A path as sqlite stores it: text, or its bytes when it is not valid UTF-8."""
    if path is None:
        return None
    text = os.fspath(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # surrogate-escaped bytes from the file system
        return os.fsencode(text)
    return text


def from_db(value):
    """A path read back from sqlite (a BLOB is a name that was not UTF-8)."""
    return os.fsdecode(value) if isinstance(value, bytes) else value


def to_text(message: str | None) -> str | None:
    """A message for sqlite: a name in it that is not UTF-8 is written escaped (`\\udcff`)."""
    return None if message is None else str(message).encode("utf-8", "backslashreplace").decode("utf-8")


class SchemaError(Exception):
    """The database is a ledger this version cannot use (the caller names the file)."""


def _tables(db: sqlite3.Connection) -> set[str]:
    return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def _columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {r[1] for r in db.execute(f"PRAGMA table_info({table})")}


def prepare(db: sqlite3.Connection) -> None:
    """Create the tables of a new ledger, migrate a version-1 ledger, or raise `SchemaError`.
    Runs in one immediate transaction, so two processes opening the same file never both migrate."""
    db.execute("BEGIN IMMEDIATE")
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = _tables(db)
        if version > VERSION:
            raise SchemaError(f"written by a newer visionloop (ledger schema {version}, this version reads up to "
                              f"{VERSION}); upgrade visionloop, or point VISIONLOOP_STATE_DIR elsewhere")
        if version == 0 and "files" in tables:
            if not _V1_REQUIRED <= _columns(db, "files"):
                raise SchemaError("not a visionloop ledger (its `files` table has other columns)")
            _migrate_v1(db)
        elif version == VERSION and not {"files", "duplicates", "seen", "outputs"} <= tables:
            raise SchemaError("damaged: it says schema 2 but tables are missing")
        for statement in _TABLES.split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {VERSION}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _migrate_v1(db: sqlite3.Connection) -> None:
    """Version 1 -> 2: every row gets the fingerprint `legacy`; the rescan cache starts empty."""
    now_states = ", ".join(f"'{s}'" for s in STATES)
    bad = db.execute(f"SELECT COUNT(*) FROM files WHERE state NOT IN ({now_states})").fetchone()[0]
    if bad:
        raise SchemaError(f"{bad} row(s) have a state this version does not know; move the ledger aside")
    have = _columns(db, "files")
    optional = ", ".join(col if col in have else f"{default} AS {col}" for col, default in _V1_OPTIONAL.items())
    db.execute("ALTER TABLE files RENAME TO files_v1")
    if "duplicates" in _tables(db):
        db.execute("ALTER TABLE duplicates RENAME TO duplicates_v1")
    db.execute("DROP TABLE IF EXISTS seen")
    for statement in _TABLES.split(";"):
        if statement.strip():
            db.execute(statement)
    db.execute("INSERT INTO files (sha, rule, fp, path, state, attempts, redone, error, step, run_dir, pid, updated) "
               f"SELECT sha, rule, ?, path, state, {optional}, updated FROM files_v1",
               (LEGACY,))
    db.execute("DROP TABLE files_v1")
    if "duplicates_v1" in _tables(db):
        db.execute("INSERT OR IGNORE INTO duplicates (path, rule, fp, sha, updated) "
                   "SELECT path, rule, ?, sha, updated FROM duplicates_v1", (LEGACY,))
        db.execute("DROP TABLE duplicates_v1")
