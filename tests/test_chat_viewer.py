"""`/open`: the image goes to the system's viewer as one argument, never through a shell."""

from __future__ import annotations

import shutil

import visionloop.chat.viewer as viewer


def test_open_uses_the_viewer_where_there_is_one(talk, pics, monkeypatch):
    talk.say(f"/image {pics[0]}")
    monkeypatch.setattr(viewer, "find_viewer", lambda: None)
    out, _ = talk.say("/open #1")
    assert out.strip() == f"no image viewer found here; #1 is at {pics[0]}"
    launched = []
    monkeypatch.setattr(viewer, "find_viewer", lambda: ["viewer"])
    monkeypatch.setattr(viewer.subprocess, "Popen", lambda argv, **kw: launched.append(argv))
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
    monkeypatch.setattr(viewer.subprocess, "Popen", lambda argv, **kw: launched.append(argv))
    talk.say("/open #1")
    assert launched == [["viewer", str(tmp_path / "-n.png")]]

    def refuse(argv, **kw):
        raise FileNotFoundError(2, "No such file or directory", argv[0])

    monkeypatch.setattr(viewer.subprocess, "Popen", refuse)
    out, err = talk.say("/open #1")
    assert out == "" and err == "error: could not open #1 -n.png: No such file or directory\n"
    _, err = talk.say("/open the first one")
    assert err == "error: usage: /open [#N] (the latest image without #N)\n"
