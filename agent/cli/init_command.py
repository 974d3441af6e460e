"""`visionloop init`: write the commented default `config.yaml` where visionloop will find it.

By default the user config folder (`~/.config/visionloop/config.yaml` on Linux), the last place
the lookup tries; `--here` writes `./config.yaml` instead, `--to FILE` any path. An existing
file is never overwritten unless `--force` is given, and then it is kept beside as `NAME.bak`.
The text is the commented `config.yaml` that ships with visionloop, byte for byte, with the
profile set by `--profile` when given (so `visionloop --profile tiny init` makes a config that
runs on the built-in tiny models).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from visionloop.cli.jsonlines import json_command


def add_commands(sub, common) -> None:
    p = sub.add_parser("init", parents=[common()],
                       help="write a commented config.yaml to the user config folder",
                       description="Write the commented default config.yaml (with the --profile given, "
                                   "if any) to the user config folder, ./config.yaml (--here) or FILE (--to).")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--here", action="store_true", help="write ./config.yaml instead")
    where.add_argument("--to", metavar="FILE", help="write this file instead")
    p.add_argument("--force", action="store_true", help="replace an existing file (kept as FILE.bak)")
    p.set_defaults(handler=cmd_init)


def target(args) -> Path:
    import platformdirs

    from visionloop.config import APP
    from visionloop.paths import user_path

    if args.to is not None:
        return user_path(args.to, "--to")
    if args.here:
        return Path("config.yaml")
    return Path(platformdirs.user_config_dir(APP)) / "config.yaml"


def config_text(profile: str | None) -> str:
    from visionloop.errors import ConfigError
    from visionloop.workflows.library import bundled_config

    source = bundled_config()
    if source is None:
        raise ConfigError("the commented default config.yaml is missing from this installation (reinstall visionloop)")
    text = source.read_text(encoding="utf-8")
    if profile:
        text, n = re.subn(r"(?m)^profile: \S+", f"profile: {profile}", text, count=1)
        if not n:
            raise ConfigError(f"{source}: no top-level 'profile:' line to set")
    return text


@json_command("init")
def cmd_init(args, app, out) -> int:
    """One result line under --json (the file, `created` or `replaced`, the backup); an error
    (the file exists, a folder, cannot write) ends in the summary's `error`, nothing written."""
    record = write_config(args, app)
    out.result(record)
    if app.json:
        return 0
    print(f"wrote {record['file']}" + (f" (the old one is {record['backup']})" if record["backup"] else ""))
    if not getattr(args, "quiet", False):
        print("edit it to point the profiles at your models; `visionloop workflows` and `visionloop tools` "
              "show what it gives", file=sys.stderr)
    return 0


def write_config(args, app) -> dict:
    """Write the file; the record of what was done. Raises a one-line error, writing nothing."""
    from visionloop.errors import UsageError, VisionloopError
    from visionloop.images import atomic_write_bytes

    path = target(args)
    text = config_text(app.config.profile if getattr(args, "profile", None) else None)
    backup = None
    if path.is_dir():
        raise UsageError(f"{path}: is a folder; give a file name with --to")
    if path.exists():
        if not args.force:
            raise VisionloopError(f"{path}: already exists; nothing written (--force replaces it, "
                                  f"keeping the old one as {path.name}.bak)")
        backup = path.with_name(path.name + ".bak")
        backup.write_bytes(path.read_bytes())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, text.encode("utf-8"))
    except OSError as exc:
        raise VisionloopError(f"{path}: cannot write: {exc.strerror or exc}") from None
    return {"file": str(path.resolve()), "status": "replaced" if backup else "created",
            "backup": str(backup.resolve()) if backup else None, "error": None}
