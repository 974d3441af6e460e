"""draw, edit and restyle from the command line: JSON, usage errors, bad values (one line, exit 1),
masks of other shapes, and output folders that cannot take the result (refused before generating)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from json_lines import one


SHARED_NAMES = {"image", "prompt", "negative_prompt", "width", "height", "size", "steps", "guidance", "seed",
                "scheduler", "strength", "mask", "box", "style", "count"}
RECORD_KEYS = {"model", "prompt", "negative_prompt", "steps", "guidance", "seed", "width", "height", "scheduler"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py: one intra-op thread


def test_cli_draw_json(cli, tmp_path):
    res = cli("draw", "a small house", "--negative", "fog", "--seed", "9", "--steps", "2", "--json",
              "--out", tmp_path / "o")
    assert res.code == 0, res.err
    payload = one(res.out)
    assert set(payload) == {"tool", "text", "images", "data", "error"}
    assert payload["data"]["negative_prompt"] == "fog" and payload["data"]["steps"] == 2
    assert payload["images"][0].startswith(str(tmp_path / "o"))
    assert "it/s" not in res.err and "%|" not in res.err  # no progress bars under --json


def test_cli_usage_error_exits_2(cli, example_image):
    assert cli("draw").code == 2
    assert cli("edit", "x.png").code == 2  # --prompt is required
    # malformed values (not a size, not a box) are usage errors too, with the reason
    res = cli("draw", "cat", "--size", "64")
    assert res.code == 2 and "expected WIDTHxHEIGHT" in res.err
    res = cli("edit", example_image, "--prompt", "x", "--box", "1,2,3")
    assert res.code == 2 and "expected four whole numbers x0,y0,x1,y1" in res.err


@pytest.mark.parametrize("args, needle", [
    (["draw", "cat", "--steps", "0"], "steps"),
    (["draw", "cat", "--width", "65"], "multiple of 8"),
    (["draw", "cat", "--height", "100"], "multiple of 8"),
    (["draw", "cat", "--width", "4096"], "maximum"),
    (["draw", "cat", "--width", "4096"], "(profiles.tiny.diffusion.max_width in the config)"),
    (["draw", "cat", "--size", "64x9000"], "profiles.tiny.diffusion.max_height"),
    (["draw", ""], "prompt: must not be empty"),
    (["draw", "  \t  "], "prompt: must not be empty"),
    (["draw", "cat", "--negative", ""], "negative_prompt: must not be empty"),
    (["draw", "cat", "--seed", "9223372036854775808"],
     "seed: must be at most 9223372036854775807, got 9223372036854775808"),
    (["draw", "cat", "--seed", "9223372036854775807", "--count", "2"], "seed: must be at most 9223372036854775806"),
    (["restyle", "EXAMPLE", "--style", "x", "--strength", "1.0000001"], "strength: must be at most 1, got 1.0000001"),
    (["draw", "cat", "--guidance", "50.25"], "guidance: must be at most 50, got 50.25"),
    (["draw", "cat", "--size", "0x0"], "size: width must be at least 8, got 0"),
    (["draw", "cat", "--size", "64x4"], "size: height must be at least 8, got 4"),
    (["draw", "cat", "--size", "64x60"], "size: height must be a multiple of 8, got 60"),
    (["edit", "EXAMPLE", "--prompt", "x", "--mask", "TALLMASK"],
     "TALLMASK: the mask is 16x16 but the image is 256x192"),
    (["draw", "cat", "--scheduler", " "], "scheduler: must not be empty"),
    (["restyle", "EXAMPLE", "--style", ""], "style: must not be empty"),
    (["restyle", "EXAMPLE", "--style", "x", "--prompt", "  "], "prompt: must not be empty"),
    (["edit", "EXAMPLE", "--prompt", "x", "--mask", ""], "mask: expected a file path, got an empty string"),
    (["edit", "EXAMPLE", "--prompt", "", "--box", "0,0,8,8"], "prompt: must not be empty"),
    (["edit", "EXAMPLE", "--prompt", "\x01\x7f", "--box", "0,0,8,8"], "prompt: must not be empty"),
    (["edit", "", "--prompt", "x", "--box", "0,0,8,8"], "image: expected a file path, got an empty string"),
    (["draw", "cat", "--guidance", "-1"], "guidance"),
    (["draw", "cat", "--count", "0"], "count"),
    (["draw", "cat", "--scheduler", "nonsense"], "unknown scheduler"),
    (["restyle", "EXAMPLE", "--style", "x", "--strength", "1.5"], "strength"),
    (["restyle", "EXAMPLE", "--style", "x", "--strength", "-0.1"], "strength"),
    (["restyle", "EXAMPLE", "--style", "x", "--strength", "0.1", "--steps", "4"], "no denoising step"),
    (["restyle", "EXAMPLE"], "--style"),
    (["restyle", "missing.png", "--style", "x"], "file not found"),
    (["edit", "EXAMPLE", "--prompt", "x"], "--mask, --box or --where"),
    (["edit", "EXAMPLE", "--prompt", "x", "--mask", "nope.png"], "nope.png: file not found"),
    (["edit", "EXAMPLE", "--prompt", "x", "--mask", "BADMASK"], "not a supported image"),
    (["edit", "EXAMPLE", "--prompt", "x", "--mask", "BLACKMASK"], "nothing to repaint"),
    (["edit", "EXAMPLE", "--prompt", "x", "--mask", "BLACKMASK", "--box", "0,0,8,8"], "not both"),
    (["edit", "EXAMPLE", "--prompt", "x", "--box", "0,0,300,10"], "not inside"),
    (["edit", "EXAMPLE", "--prompt", "x", "--box=-5,0,10,10"], "not inside"),
    (["edit", "EXAMPLE", "--prompt", "x", "--box", "10,10,10,20"], "not inside"),
    (["edit", "EXAMPLE", "--prompt", "x", "--strength", "2", "--box", "0,0,8,8"], "strength"),
    (["draw", "cat", "--out", "FILE/sub"], "cannot create output folder: a part of the path is a file"),
    (["draw", "cat", "--out", "FILE"], "output path exists and is not a folder"),
])
def test_bad_values_give_one_line_and_exit_1(cli, example_image, tmp_path, args, needle):
    (tmp_path / "bad.png").write_text("not an image at all")
    (tmp_path / "file.txt").write_text("x")
    Image.new("L", (32, 24), 0).save(tmp_path / "black.png")  # the example's 4:3
    subs = {"EXAMPLE": str(example_image), "BADMASK": str(tmp_path / "bad.png"), "FILE": str(tmp_path / "file.txt"),
            "BLACKMASK": str(tmp_path / "black.png"), "TALLMASK": str(tmp_path / "tall.png")}
    Image.new("L", (16, 16), 255).save(tmp_path / "tall.png")  # square: not the 4:3 example's shape
    args = [a.replace("FILE", subs["FILE"]) if a.startswith("FILE") else subs.get(a, a) for a in args]
    res = cli(*args, "--out", tmp_path / "out") if "--out" not in args else cli(*args)
    assert res.code == 1, (res.code, res.err)
    lines = res.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), res.err
    assert needle.replace("TALLMASK", subs["TALLMASK"]) in lines[0]
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_unwritable_output_folder(cli, tmp_path):
    # a folder below a regular file cannot be made, even by root (a chmod'ed folder can)
    blocker = tmp_path / "plain-file"
    blocker.write_text("x")
    res = cli("draw", "cat", "--seed", "1", "--steps", "1", "--out", blocker / "sub")
    assert res.code == 1, (res.code, res.err)
    lines = res.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "cannot create output folder" in lines[0], res.err
    assert blocker.read_text() == "x"


def test_draw_never_writes_through_links_in_the_output_folder(cli, tmp_path):
    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    (outside / "mine.png").write_bytes(b"not yours")
    (out / "draw-cat-7.png").symlink_to(outside / "new.png")  # dangling, named like seed 7's image
    (out / "draw-cat-8.png").symlink_to(outside / "mine.png")  # a file outside, named like seed 8's
    res = cli("draw", "cat", "--seed", "7", "--count", "2", "--steps", "1", "--out", out, "--json")
    assert res.code == 0, res.err
    images = one(res.out)["images"]
    assert [Path(p).name for p in images] == ["draw-cat-7-1.png", "draw-cat-8-1.png"]  # none lost
    assert all(Image.open(p).size == (64, 64) for p in images)
    assert sorted(p.name for p in outside.iterdir()) == ["mine.png"]
    assert (outside / "mine.png").read_bytes() == b"not yours"
    assert (out / "draw-cat-7.png").is_symlink() and (out / "draw-cat-8.png").is_symlink()


def _file(t: Path) -> Path:
    (t / "file").write_text("x")
    return t / "file"


def _dangling(t: Path) -> Path:
    (t / "gone").symlink_to(t / "nowhere")
    return t / "gone"


@pytest.mark.parametrize("make_out, needle", [
    (_file, "output path exists and is not a folder"),
    (lambda t: _file(t) / "sub", "cannot create output folder: a part of the path is a file"),
    (_dangling, "output path exists and is a broken symbolic link"),
    (lambda t: Path("/sys"), "output folder is not writable"),  # root passes os.access there; writing fails
])
def test_an_output_folder_that_cannot_be_written_is_refused_before_generating(cli, tmp_path, monkeypatch,
                                                                                example_image, make_out, needle):
    from visionloop.models.cache import ModelCache

    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded before the output folder was checked")

    monkeypatch.setattr(ModelCache, "diffusion", no_model)
    monkeypatch.setattr(ModelCache, "llava", no_model)
    out = make_out(tmp_path)
    for args in (["draw", "cat"], ["restyle", example_image, "--style", "ink"],
                 ["edit", example_image, "--prompt", "x", "--box", "0,0,8,8"]):
        res = cli(*args, "--seed", "1", "--out", out)
        assert res.code == 1, (args, res.err)
        assert res.err.startswith("error: ") and needle in res.err and res.err.count("\n") == 1, res.err


def test_a_mask_of_another_scale_is_resized_but_another_shape_is_refused(tmp_path):
    from types import SimpleNamespace

    from visionloop.errors import InputError
    from visionloop_plugins.edit import region_mask

    ctx = SimpleNamespace(load_image=lambda path, mode: Image.open(path).convert(mode))
    picture = Image.new("RGB", (100, 75))
    for size in ((33, 25), (34, 25), (200, 150), (201, 151)):  # a third, rounded; twice, off by a pixel
        Image.new("L", size, 255).save(tmp_path / "m.png")
        notes = []
        region, _ = region_mask(ctx, picture, str(tmp_path / "m.png"), None, notes)
        assert region.size == (100, 75) and notes == [f"mask {size[0]}x{size[1]} resized to the image's 100x75"]
    for size in ((40, 25), (100, 80), (75, 100)):
        Image.new("L", size, 255).save(tmp_path / "m.png")
        with pytest.raises(InputError) as err:
            region_mask(ctx, picture, str(tmp_path / "m.png"), None, [])
        expected = f"{tmp_path / 'm.png'}: the mask is {size[0]}x{size[1]} but the image is 100x75"
        assert str(err.value).startswith(expected)
