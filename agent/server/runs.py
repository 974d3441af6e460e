"""Past runs in the output folder, whatever made them: `/api/runs` and the gallery.

Three sources, one shape:

- `run:FOLDER`: a workflow run (the CLI's, the watcher's, the server's, a replay), from its
  `manifest.json`;
- `call:N`: a single tool call, from the history (`visionloop.history`), whichever face made it;
- `image:FILE`: a picture with a `visionloop` PNG record that no history row claims (made before
  the history existed, or with `history: false`).

Reading a manifest or a PNG's metadata is cached by the file's mtime and size, and history rows
are read once (they never change), so a fresh listing costs a directory scan and a stat per run.
A listing is reused for up to `FRESH` seconds while the output folder itself is unchanged and no
job of this server has ended (`invalidate`); what another process adds shows within that time.
"""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from visionloop import history
from visionloop.server.files import UPLOADS, Refused, Roots

MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 64_000_000
TEXT_CHARS = 300  # of a result's text in a listing
FRESH = 1.0  # seconds a listing is reused while nothing says it changed
SETTING_KEYS = ("steps", "guidance", "scheduler", "strength", "model", "count", "max_new_tokens", "temperature")


def settings_of(data: dict) -> dict:
    """The parameters a person compares pictures by, from a result's data or a PNG record."""
    out = {k: data[k] for k in SETTING_KEYS if data.get(k) not in (None, "", [])}
    if data.get("scheduler_name"):
        out["scheduler"] = data["scheduler_name"]
    if data.get("model_id"):
        out["model"] = data["model_id"]
    if data.get("width") and data.get("height"):
        out["size"] = f"{data['width']}x{data['height']}"
    return out


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds")


def _matches(summary: dict, tool: str | None, words: list[str]) -> bool:
    if tool and tool != summary["name"] and tool not in summary.get("tools", ()):
        return False
    if words:
        hay = " ".join(str(summary.get(k) or "") for k in ("name", "prompt", "text", "error", "id")).lower()
        hay += " " + " ".join(summary.get("tools", ())).lower()
        return all(w in hay for w in words)
    return True


class RunIndex:
    def __init__(self, roots: Roots):
        self.roots = roots
        self._files: dict[str, tuple[tuple, dict | None]] = {}  # path -> ((mtime_ns, size), summary)
        self._calls: dict[int, dict] = {}  # history id -> summary
        self._since = 0
        self._db = None  # the history file those came from
        self._lock = threading.Lock()
        self._listing: list[dict] | None = None
        self._listed: tuple[float, int | None] = (0.0, None)  # (when, the folder's mtime then)

    def invalidate(self) -> None:
        """Something was added (a job ended): the next listing looks again."""
        self._listing = None

    # --- listing ---------------------------------------------------------------------------------
    def list(self, tool: str | None = None, q: str | None = None, limit: int = 50, offset: int = 0) -> dict:
        words = (q or "").lower().split()
        runs = [s for s in self._all() if _matches(s, tool, words)]
        return {"total": len(runs), "offset": offset, "limit": limit, "runs": runs[offset:offset + limit]}

    def tools(self) -> list[str]:
        return sorted({t for s in self._all() for t in s.get("tools", ())})

    def _all(self) -> list[dict]:
        try:
            stamp = os.stat(self.roots.out).st_mtime_ns
        except OSError:
            stamp = None
        with self._lock:
            listing, (when, before) = self._listing, self._listed
            if listing is not None and stamp == before and time.monotonic() - when < FRESH:
                return listing
            listing = self._scan_all()
            self._listing, self._listed = listing, (time.monotonic(), stamp)
            return listing

    def _scan_all(self) -> list[dict]:
        fresh: dict[str, tuple[tuple, dict | None]] = {}
        found: list[dict] = []
        self._scan(str(self.roots.out), 0, fresh, found)
        self._files = fresh
        calls = self._history_calls()
        claimed = {img for c in calls for img in c["images"]}
        found = [s for s in found if not (s["source"] == "png" and s["images"][0] in claimed)]
        found.extend(calls)
        found.sort(key=lambda s: s["time"] or "", reverse=True)
        return found

    def _scan(self, folder: str, depth: int, fresh: dict, found: list) -> None:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            return
        for entry in entries:
            name = entry.name
            if name.startswith(".") or (depth == 0 and name == UPLOADS):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    manifest = os.path.join(entry.path, MANIFEST)
                    summary = self._cached(manifest, self._manifest_summary, fresh)
                    if summary is not None:
                        found.append(summary)
                    elif depth < 1 and not os.path.lexists(manifest):  # a batch's or a rule's folder of runs
                        self._scan(entry.path, depth + 1, fresh, found)
                elif name.lower().endswith(".png") and entry.is_file(follow_symlinks=False):
                    summary = self._cached(entry.path, self._png_summary, fresh)
                    if summary is not None:
                        found.append(summary)
            except OSError:
                continue

    def _cached(self, path: str, build, fresh: dict) -> dict | None:
        try:
            st = os.stat(path, follow_symlinks=False)
        except OSError:
            return None
        stamp = (st.st_mtime_ns, st.st_size)
        hit = self._files.get(path)
        if hit is not None and hit[0] == stamp:
            fresh[path] = hit
            return hit[1]
        try:
            summary = build(path, st)
        except (OSError, ValueError, Refused):
            summary = None
        except Exception:  # noqa: BLE001 - one odd file must not break the gallery
            summary = None
        fresh[path] = (stamp, summary)
        return summary

    # --- the three sources -----------------------------------------------------------------------
    def _manifest_summary(self, path: str, st) -> dict | None:
        if st.st_size > MAX_MANIFEST_BYTES:
            return None
        with open(path, "rb") as fh:
            data = json.loads(fh.read())
        if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
            return None
        folder = self.roots.relative(os.path.dirname(path))
        steps = [s for s in data["steps"] if isinstance(s, dict)]
        images = [r for s in steps for r in map(self.roots.relative, s.get("images") or []) if r]
        first = next((s for s in steps if isinstance(s.get("args"), dict) and s["args"].get("prompt")), None)
        seeded = next((s for s in steps if s.get("seed") is not None), None)
        wf = data.get("workflow") if isinstance(data.get("workflow"), dict) else {}
        text = next((s.get("text") for s in steps if s.get("text")), "") or ""
        return {"id": f"run:{folder}", "kind": "workflow", "source": "manifest", "name": str(wf.get("name") or "run"),
                "tools": [str(s.get("tool")) for s in steps], "status": data.get("status"),
                "time": data.get("started"), "seconds": data.get("seconds"), "images": images,
                "text": str(text)[:TEXT_CHARS], "prompt": (first or {}).get("args", {}).get("prompt"),
                "seed": (seeded or {}).get("seed"), "settings": settings_of((first or {}).get("data") or {}),
                "error": data.get("error"), "replay_of": data.get("replay_of")}

    def _png_summary(self, path: str, st) -> dict | None:
        from visionloop.errors import VisionloopError
        from visionloop.images import read_metadata

        try:
            meta = read_metadata(path)
        except VisionloopError:
            return None
        record = meta.get("visionloop")
        if not isinstance(record, dict):
            return None  # not ours: a photo someone put there
        rel = self.roots.relative(path)
        return {"id": f"image:{rel}", "kind": "tool", "source": "png", "name": str(record.get("tool") or "image"),
                "tools": [str(record.get("tool") or "image")], "status": "ok", "time": _iso(st.st_mtime),
                "seconds": record.get("generate_seconds"), "images": [rel], "text": "", "prompt": record.get("prompt"),
                "seed": record.get("seed"), "settings": settings_of(record), "error": None}

    def _call_summary(self, row: dict) -> dict:
        args, data = row["args"], row["data"]
        images = [r for r in map(self.roots.relative, row["images"]) if r]
        return {"id": f"call:{row['id']}", "kind": "tool", "source": "history", "name": row["tool"],
                "tools": [row["tool"]], "status": "failed" if row["error"] else "ok", "time": row["time"],
                "seconds": row["seconds"], "images": images, "text": (row["text"] or "")[:TEXT_CHARS],
                "prompt": args.get("prompt") or args.get("question") or data.get("prompt"), "seed": row["seed"],
                "settings": settings_of({**args, **data}), "error": row["error"], "face": row["face"]}

    def _history_calls(self) -> list[dict]:
        where = history.path()
        if where != self._db:  # another history file (VISIONLOOP_DATA_DIR changed): start again
            self._calls, self._since, self._db = {}, 0, where
        try:
            new = history.rows(limit=None, out_dir=str(self.roots.out), standalone=True, since_id=self._since)
        except Exception:  # noqa: BLE001 - an unreadable history: the files still list
            new = []
        for row in new:
            self._calls[row["id"]] = self._call_summary(row)
            self._since = max(self._since, row["id"])
        return list(self._calls.values())

    # --- one run -----------------------------------------------------------------------------------
    def detail(self, run_id: str) -> dict | None:
        kind, _, key = run_id.partition(":")
        try:
            if kind == "run":
                return self._run_detail(key)
            if kind == "call" and key.isdigit():
                return self._call_detail(int(key))
            if kind == "image":
                return self._image_detail(key)
        except (Refused, OSError, ValueError):
            return None
        return None

    def _step(self, step_id, tool, args, status, text, images, seed, error, seconds, data=None) -> dict:
        shown = {k: (self.roots.relative(v) or v) if isinstance(v, str) and os.path.isabs(v) else v
                 for k, v in (args or {}).items()}
        return {"id": step_id, "tool": tool, "args": shown, "status": status, "text": text or "",
                "images": [r for r in map(self.roots.relative, images or []) if r], "seed": seed, "error": error,
                "seconds": seconds, "settings": settings_of({**(args or {}), **(data or {})})}

    def _run_detail(self, key: str) -> dict | None:
        path = self.roots.output_file(f"{key}/{MANIFEST}")
        data = json.loads(path.read_bytes())
        summary = self._manifest_summary(str(path), path.stat())
        if summary is None:
            return None
        env = data.get("environment") if isinstance(data.get("environment"), dict) else {}
        steps = [self._step(s.get("id"), s.get("tool"), s.get("args"), s.get("status"), s.get("text"),
                            s.get("images"), s.get("seed"), s.get("error"), s.get("seconds"), s.get("data"))
                 for s in data["steps"] if isinstance(s, dict)]
        inputs = {k: (v.get("value") if isinstance(v, dict) else v) for k, v in (data.get("inputs") or {}).items()}
        return {**summary, "steps": steps, "inputs": inputs, "outputs": data.get("outputs"),
                "manifest": f"{key}/{MANIFEST}", "environment": {k: env.get(k) for k in ("profile", "device", "dtype")},
                "replay": True, "again": False}

    def _call_detail(self, row_id: int) -> dict | None:
        row = history.get(row_id)
        if row is None or row["out_dir"] != str(self.roots.out) or row["run"]:
            return None
        summary = self._call_summary(row)
        step = self._step(row["tool"], row["tool"], row["args"], summary["status"], row["text"], row["images"],
                          row["seed"], row["error"], row["seconds"], row["data"])
        return {**summary, "text": row["text"] or "", "steps": [step], "replay": True, "again": True}

    def _image_detail(self, key: str) -> dict | None:
        from visionloop.images import read_metadata

        path = self.roots.output_file(key)
        summary = self._png_summary(str(path), path.stat())
        if summary is None:
            return None
        meta = read_metadata(path)
        record = meta["visionloop"]
        from visionloop.server.replays import image_args

        step = self._step(record.get("tool"), record.get("tool"), image_args(record), "ok", "", [str(path)],
                          record.get("seed"), None, record.get("generate_seconds"), record)
        drawable = record.get("tool") == "draw"
        return {**summary, "steps": [step], "parameters": meta.get("parameters"), "replay": drawable,
                "again": drawable}
