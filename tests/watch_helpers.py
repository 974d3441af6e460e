"""What the watcher tests (and benchmarks/watch_throughput.py) share: the one-step caption
workflow, a watch folder with it, a rule on that folder, small distinct PNGs and a polling wait.
No pytest here, so the benchmark can import it too."""

from __future__ import annotations

import time
from pathlib import Path

from PIL import Image

from visionloop.config import WatchRule

CAPTION_WORKFLOW = """\
name: alt
inputs:
  image: {type: image}
steps:
  - id: cap
    tool: caption
    with: {image: "${inputs.image}"}
outputs:
  caption: "${steps.cap.text}"
"""


def watch_folder(root: Path, workflow: str = CAPTION_WORKFLOW) -> Path:
    """`root/in` (empty) to watch and `root/wf.yaml` to run. The ledgers go to
    $VISIONLOOP_STATE_DIR, which conftest's autouse fixture points into the test's tmp_path."""
    (root / "in").mkdir()
    (root / "wf.yaml").write_text(workflow)
    return root


def make_rule(root: Path, **kw) -> WatchRule:
    """A rule watching `root/in` with `root/wf.yaml`, writing to `root/out`; `kw` overrides."""
    fields = dict(name="alt", folder=str(root / "in"), workflow=str(root / "wf.yaml"), output=str(root / "out"),
                  settle=0.2)
    fields.update(kw)
    return WatchRule(**fields)


def png(path: Path, i: int = 0) -> Path:
    """A small, distinct, valid PNG (distinct bytes: no accidental duplicates)."""
    Image.new("RGB", (24, 24), (i % 256, (i // 256) % 256, 99)).save(path, format="PNG")
    return path


def wait_for(cond, timeout=120.0, step=0.05):
    """Poll `cond` until it holds or `timeout` seconds pass; its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()
