"""`/open`: the image goes to the system's viewer as one argument, never through a shell."""

from __future__ import annotations

import shutil

import visionloop.chat.viewer as viewer


class Viewer:
    """A started viewer process: `status` None is one still running (it has the file)."""

    def __init__(self, status):
        self.status = status

    def wait(self, timeout=None):
        if self.status is None:
            raise viewer.subprocess.TimeoutExpired("viewer", timeout)
        return self.status


def test_open_uses_the_viewer_where_there_is_one(talk, pics, monkeypatch):
    talk.say(f"/image {pics[0]}")
    monkeypatch.setattr(viewer, "find_viewer", lambda: None)
    out, err = talk.say("/open #1")
    assert out == "" and err == (f"error: could not open #1 {pics[0]}: no image viewer found here; "
                                 f"the file is at {pics[0]}\n")
    launched = []
    monkeypatch.setattr(viewer, "find_viewer", lambda: ["viewer"])
    monkeypatch.setattr(viewer.subprocess, "Popen", lambda argv, **kw: launched.append(argv) or Viewer(0))
    out, _ = talk.say("/open #1")
    assert launched == [["viewer", pics[0]]] and out.strip() == f"opened #1 {pics[0]}"
    _, err = talk.say("/open #4")
    assert "there is no image #4" in err


def test_open_on_windows_hands_the_path_to_the_shell_not_to_cmd(talk, tmp_path, example_image, monkeypatch):
    odd = tmp_path / "a & calc | b ^ c.png"  # cmd.exe would run `calc`
    shutil.copy(example_image, odd)
    talk.say(f'/image "{odd}"')
    started = []
    monkeypatch.setattr(viewer.sys, "platform", "win32")
    monkeypatch.setattr(viewer.os, "startfile", started.append, raising=False)
    monkeypatch.setattr(viewer.subprocess, "Popen", lambda argv, **kw: started.append(("ran", argv)))
    out, err = talk.say("/open")
    assert started == [str(odd)] and err == "" and out.strip() == f"opened #1 {odd}"


def test_the_viewer_gets_an_absolute_path_and_its_failure_is_one_line(talk, tmp_path, example_image, monkeypatch):
    shutil.copy(example_image, tmp_path / "-n.png")  # the test runs in tmp_path: a relative name like an option
    talk.say("/image ./-n.png")
    launched = []
    monkeypatch.setattr(viewer, "find_viewer", lambda: ["viewer"])
    monkeypatch.setattr(viewer.subprocess, "Popen", lambda argv, **kw: launched.append(argv) or Viewer(None))
    talk.say("/open #1")
    assert launched == [["viewer", str(tmp_path / "-n.png")]]

    def refuse(argv, **kw):
        raise FileNotFoundError(2, "No such file or directory", argv[0])

    monkeypatch.setattr(viewer.subprocess, "Popen", refuse)
    out, err = talk.say("/open #1")
    assert out == "" and err == "error: could not open #1 -n.png: No such file or directory\n"
    _, err = talk.say("/open the first one")
    assert err == "error: usage: /open [#N] (the latest image without #N)\n"


def test_a_viewer_that_fails_is_reported_not_said_to_have_opened(talk, pics, monkeypatch, tmp_path):
    # xdg-open on a machine with no desktop: it starts, finds no viewer to hand the file to, exits 3
    script = tmp_path / "xdg-open"
    script.write_text("#!/bin/sh\nexit 3\n")
    script.chmod(0o755)
    talk.say(f"/image {pics[0]}")
    monkeypatch.setattr(viewer.sys, "platform", "linux")
    monkeypatch.setattr(viewer, "find_viewer", lambda: [str(script)])
    out, err = talk.say("/open #1")
    assert out == "" and err == (f"error: could not open #1 {pics[0]}: no image viewer could open it "
                                 f"(xdg-open exited with status 3); the file is at {pics[0]}\n")
    # one that keeps running past the wait has the file: opened
    script.write_text("#!/bin/sh\nsleep 2\n")
    monkeypatch.setattr(viewer, "VIEWER_WAIT", 0.3)
    out, err = talk.say("/open #1")
    assert err == "" and out == f"opened #1 {pics[0]}\n"
