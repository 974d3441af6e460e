"""Training captions: from `IMAGE.txt` files, from LLaVA, one fixed text, or a `captions.jsonl`
written by an earlier run (and perhaps edited by hand). The trigger word goes first. The
captions are written to the LoRA's `captions.jsonl` before training starts, so a person can
read them, fix them and train again with `--captions PATH/captions.jsonl`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable

from visionloop.errors import InputError
from visionloop.images import atomic_write_bytes
from visionloop.models.training.data import Picture

#: what LLaVA is asked for each picture without a caption file
QUESTION = ("Write a caption for this picture, as used to train an image generator: the subject, "
            "the setting and the style, in one sentence.")
MAX_CAPTION_CHARS = 500
MAX_TXT_BYTES = 10_000
MODES = ("auto", "files")


def clean(text: str) -> str:
    text = re.sub(r"[\x00-\x1f\x7f]+", " ", str(text or ""))
    return re.sub(r"\s+", " ", text).strip()[:MAX_CAPTION_CHARS].strip()


def with_trigger(caption: str, trigger: str | None) -> str:
    """The trigger word first (once): `TRIGGER, caption`."""
    if not trigger:
        return caption
    if caption == trigger or caption.startswith((f"{trigger},", f"{trigger} ")):
        return caption
    return f"{trigger}, {caption}" if caption else trigger


def read_txt(path: Path) -> str | None:
    """The caption in `IMAGE.txt` beside a picture, or None when there is none."""
    txt = path.with_suffix(".txt")
    if not txt.is_file():
        return None
    try:
        with open(txt, "rb") as fh:
            raw = fh.read(MAX_TXT_BYTES + 1)
    except OSError as exc:
        raise InputError(f"{txt}: cannot read the caption file: {exc.strerror or exc}") from None
    if len(raw) > MAX_TXT_BYTES:
        raise InputError(f"{txt}: caption file larger than {MAX_TXT_BYTES} bytes")
    try:
        text = clean(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise InputError(f"{txt}: not a UTF-8 text file (byte {exc.start})") from None
    if not text:
        raise InputError(f"{txt}: the caption file is empty")
    return text


def read_jsonl(path: Path) -> dict[str, str]:
    """{file name or sha256: caption} from a `captions.jsonl`."""
    out: dict[str, str] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InputError(f"{path}: captions file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the captions file: {getattr(exc, 'strerror', None) or exc}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            caption = clean(entry["caption"])
            keys = [str(entry[k]) for k in ("file", "sha256") if entry.get(k)]
        except (ValueError, KeyError, TypeError):
            raise InputError(f"{path}:{number}: not a JSON object with \"file\" and \"caption\"") from None
        if not caption or not keys:
            raise InputError(f"{path}:{number}: needs a non-empty \"caption\" and a \"file\"")
        for key in keys:
            out[key] = caption
    return out


def describe_mode(mode: str) -> str:
    """`auto`, `files`, `jsonl` or `fixed`: what kind of `--captions` value this is."""
    if mode in MODES:
        return mode
    return "jsonl" if mode.lower().endswith(".jsonl") else "fixed"


def gather(pictures: list[Picture], root: Path, mode: str, trigger: str | None,
           ask: Callable[[Path], str]) -> None:
    """Set each picture's caption and where it came from. `ask(path)` asks LLaVA. Every check
    that needs no model runs first, so a missing `.txt` fails before LLaVA loads."""
    kind = describe_mode(mode)
    jsonl = read_jsonl(Path(mode).expanduser()) if kind == "jsonl" else {}
    fixed = clean(mode) if kind == "fixed" else ""
    if kind == "fixed" and not fixed:
        raise InputError("captions: the fixed caption is empty")
    pending = []
    for pic in pictures:
        if kind == "fixed":
            pic.caption, pic.caption_source = fixed, "fixed"
        elif kind == "jsonl":
            name = str(pic.path.relative_to(root)) if pic.path.is_relative_to(root) else pic.path.name
            found = jsonl.get(name) or jsonl.get(pic.path.name) or jsonl.get(pic.sha256)
            if found is None:
                raise InputError(f"{mode}: no caption for {pic.path.name} (add a line "
                                 f"{{\"file\": \"{pic.path.name}\", \"caption\": \"...\"}})")
            pic.caption, pic.caption_source = found, "jsonl"
        else:
            text = read_txt(pic.path)
            if text is not None:
                pic.caption, pic.caption_source = text, "txt"
            elif kind == "files":
                raise InputError(f"{pic.path}: no caption file {pic.path.with_suffix('.txt').name} beside it "
                                 "(--captions files needs one per picture; --captions auto asks LLaVA)")
            else:
                pending.append(pic)
    for pic in pending:
        text = clean(ask(pic.path))
        if not text:
            raise InputError(f"{pic.path}: LLaVA gave an empty caption; write one in "
                             f"{pic.path.with_suffix('.txt').name} beside it")
        pic.caption, pic.caption_source = text, "llava"
    for pic in pictures:
        pic.caption = with_trigger(pic.caption, trigger)


def write(folder: Path, pictures: list[Picture], root: Path) -> Path:
    """`captions.jsonl` in the LoRA's folder: one line per picture (file, sha256, caption, source)."""
    from visionloop.models.training.store import CAPTIONS_FILE

    lines = [json.dumps({"file": pic.record(root)["file"], "sha256": pic.sha256, "caption": pic.caption,
                         "source": pic.caption_source}, ensure_ascii=False) for pic in pictures]
    path = folder / CAPTIONS_FILE
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape"))
    return path
