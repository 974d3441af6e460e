"""The safe image loader: each bad file gets its own one-line reason; good files come out RGB
and upright. Saving stays inside the output folder and carries metadata."""

import io
import os
import json

import pytest
from PIL import Image, ImageFile, PngImagePlugin

from visionloop.errors import ImageError, VisionloopError
from visionloop.images import confined_path, load_image, read_metadata, safe_stem, save_image
from json_lines import one, results


def png_bytes(size=(16, 12), mode="RGB", color=(10, 20, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, "PNG")
    return buf.getvalue()


def reason(path, **kw) -> str:
    with pytest.raises(ImageError) as err:
        load_image(path, **kw)
    assert str(err.value).startswith(str(path))
    assert "\n" not in str(err.value)
    return err.value.reason


def test_missing_empty_folder(tmp_path):
    assert reason(tmp_path / "nope.png") == "file not found"
    (tmp_path / "empty.png").write_bytes(b"")
    assert reason(tmp_path / "empty.png") == "file is empty"
    assert "folder" in reason(tmp_path)


def test_not_an_image_says_what_it_is(tmp_path):
    (tmp_path / "page.png").write_text("<!DOCTYPE html><html></html>")
    assert "not a supported image (detected: HTML" in reason(tmp_path / "page.png")
    (tmp_path / "notes.jpg").write_text("hello")
    assert "detected: text" in reason(tmp_path / "notes.jpg")


def test_disallowed_format_is_not_decoded(tmp_path):
    path = tmp_path / "x.ico"
    Image.new("RGB", (16, 16)).save(path, "ICO")
    assert "not a supported image" in reason(path)


def test_truncated_and_global_switch_untouched(tmp_path):
    data = png_bytes((64, 64))
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    before = ImageFile.LOAD_TRUNCATED_IMAGES
    assert "truncated" in reason(tmp_path / "cut.png")
    assert ImageFile.LOAD_TRUNCATED_IMAGES == before


def test_pixel_limit_checked_before_decoding(tmp_path):
    path = tmp_path / "big.png"
    Image.new("L", (4000, 4000)).save(path)  # compresses to a few KB
    assert "image too large: 4000x4000" in reason(path, max_pixels=1_000_000)


def test_file_size_limit(tmp_path):
    path = tmp_path / "a.png"
    path.write_bytes(png_bytes())
    assert "file too large" in reason(path, max_file_mb=0.00001)


def test_modes_exif_and_frames_become_upright_rgb(tmp_path):
    for mode in ("L", "LA", "P", "CMYK", "RGBA", "I;16"):
        p = tmp_path / f"m{mode.replace(';', '')}.{'jpg' if mode == 'CMYK' else 'png'}"
        Image.new(mode, (8, 6)).save(p)
        assert load_image(p).mode == "RGB"
    # EXIF orientation 6 = rotate 90: a 20x10 file is shown as 10x20
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (20, 10)).save(tmp_path / "rot.jpg", exif=exif)
    assert load_image(tmp_path / "rot.jpg").size == (10, 20)
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 255, 0))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    assert load_image(tmp_path / "anim.gif").getpixel((0, 0))[0] > 200


def test_safe_stem_and_confinement(tmp_path):
    assert safe_stem("../../etc/passwd") == "etc-passwd"
    assert safe_stem("-rf \x00 .hidden") == "rf-hidden"
    assert safe_stem("CON") == "image"
    assert len(safe_stem("x" * 500)) == 60
    for bad in ("../x.png", "/etc/x.png", "~/x.png"):
        with pytest.raises(VisionloopError, match="must stay inside"):
            confined_path(tmp_path, bad)
    (tmp_path / "link").symlink_to("/tmp")
    with pytest.raises(VisionloopError, match="must stay inside"):
        confined_path(tmp_path, "link/x.png")


def test_save_is_unique_and_carries_metadata(tmp_path):
    record = {"prompt": "a cat", "negative_prompt": "blurry", "steps": 4, "scheduler": "PNDMScheduler",
              "guidance": 7.5, "seed": 42, "width": 16, "height": 12, "model": "tiny"}
    a = save_image(Image.new("RGB", (16, 12)), tmp_path / "out", "a cat/../x", record)
    b = save_image(Image.new("RGB", (16, 12)), tmp_path / "out", "a cat/../x", record)
    assert a != b and a.parent == b.parent == (tmp_path / "out").resolve()
    assert not list((tmp_path / "out").glob("*.tmp"))
    meta = read_metadata(a)
    # A1111 readers know the sampler as PLMS; the visionloop chunk keeps the diffusers class
    assert meta["parameters"] == ("a cat\nNegative prompt: blurry\nSteps: 4, Sampler: PLMS, "
                                  "CFG scale: 7.5, Seed: 42, Size: 16x12, Model: tiny")
    assert meta["visionloop"] == record


@pytest.mark.parametrize("scheduler, name, sampler", [
    ("EulerDiscreteScheduler", "euler", "Euler"),
    ("EulerAncestralDiscreteScheduler", "euler_a", "Euler a"),
    ("DPMSolverMultistepScheduler", "dpm++_2m", "DPM++ 2M"),
    ("DPMSolverMultistepScheduler", "dpm++_2m_karras", "DPM++ 2M Karras"),
    ("DDIMScheduler", "ddim", "DDIM"),
    ("PNDMScheduler", "pndm", "PLMS"),
    ("LMSDiscreteScheduler", "lms", "LMS"),
    ("HeunDiscreteScheduler", "heun", "Heun"),
    ("LCMScheduler", "lcm", "LCM"),
    ("UniPCMultistepScheduler", "unipc", "UniPC"),
    ("PNDMScheduler", None, "PLMS"),  # the model's own scheduler: named by its class
    ("EulerDiscreteScheduler", None, "Euler"),
    ("DDPMScheduler", "ddpm", "DDPMScheduler"),  # no A1111 name: the class name stays
    ("SomeFutureScheduler", None, "SomeFutureScheduler"),
])
def test_a1111_sampler_names(scheduler, name, sampler):
    from visionloop.images import a1111_parameters

    text = a1111_parameters({"prompt": "p", "scheduler": scheduler, "scheduler_name": name, "seed": 1})
    assert text.splitlines()[1] == f"Sampler: {sampler}, Seed: 1"


def test_info_command(cli, tmp_path):
    path = save_image(Image.new("RGB", (8, 8)), tmp_path, "x", {"prompt": "p", "seed": 1, "width": 8, "height": 8})
    result = cli("info", path, "--json")
    assert result.code == 0
    assert one(result.out)["visionloop"]["seed"] == 1
    assert (one(result.out)["width"], one(result.out)["height"]) == (8, 8)  # integers, as a tool gives them
    plain = cli("info", path)
    assert "Seed: 1" in plain.out and "Size: 8x8" in plain.out


def test_info_summarises_the_visionloop_chunk(cli, tmp_path):
    record = {"tool": "draw", "prompt": "p", "model": "tiny-sd", "seed": 7, "width": 16, "height": 8,
              "scheduler": "PNDMScheduler", "workflow": "poster", "run": "run-1"}
    path = save_image(Image.new("RGB", (16, 8)), tmp_path, "x", record)
    lines = cli("info", path).out.splitlines()
    assert "Sampler: PLMS" in lines[2]  # the A1111 text first
    assert lines[-1] == ("visionloop: tool draw, model tiny-sd, seed 7, size 16x8, scheduler PNDMScheduler, "
                         "workflow poster, run run-1")
    # the chunk alone (no A1111 text) is still shown, without run/workflow when absent

    info = PngImagePlugin.PngInfo()
    info.add_text("visionloop", json.dumps({"tool": "edit", "model": "m", "seed": 3, "width": 8, "height": 8,
                                            "scheduler": "DDIMScheduler"}))
    Image.new("RGB", (8, 8)).save(tmp_path / "only.png", pnginfo=info)
    out = cli("info", tmp_path / "only.png").out.splitlines()
    assert out[1:] == ["visionloop: tool edit, model m, seed 3, size 8x8, scheduler DDIMScheduler"]
    Image.new("RGB", (8, 8)).save(tmp_path / "plain.png")
    assert cli("info", tmp_path / "plain.png").out.splitlines()[1:] == ["(no generation metadata)"]


def test_saved_files_get_the_usual_mode_not_0600(tmp_path):
    import os
    import stat

    from visionloop.images import atomic_write_json

    old = os.umask(0o022)
    try:
        png = save_image(Image.new("RGB", (4, 4)), tmp_path, "x", {"prompt": "p"})
        atomic_write_json(tmp_path / "m.json", {"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE(png.stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "m.json").stat().st_mode) == 0o644


def test_info_refuses_bombs_and_disallowed_formats_in_one_line(cli, tmp_path):
    bomb = tmp_path / "bomb.png"
    Image.new("1", (20000, 20000)).save(bomb)  # 400 Mpx: past Pillow's own 2x limit
    result = cli("info", bomb)
    assert result.code == 1 and "Traceback" not in result.err
    assert result.err.strip() == f"error: {bomb}: image too large: 400,000,000 px > limit 178,956,970 px (decompression bomb)"
    eps = tmp_path / "x.eps"
    eps.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n")
    result = cli("info", eps)
    assert result.code == 1 and "not a supported image" in result.err


def test_loader_bomb_message_names_the_size(tmp_path):
    bomb = tmp_path / "bomb.png"
    Image.new("1", (20000, 20000)).save(bomb)
    assert reason(bomb) == "image too large: 400,000,000 px > limit 50,000,000 px (decompression bomb)"


@pytest.mark.parametrize("error", [OSError("disk full"), ValueError("bad value"), EOFError("eof")])
def test_an_error_in_the_callers_block_is_not_blamed_on_the_image(tmp_path, error):
    from visionloop.images import peek

    path = tmp_path / "fine.png"
    path.write_bytes(png_bytes())
    with pytest.raises(type(error)) as raised:
        with peek(path) as img:
            assert img.size == (16, 12)
            raise error
    assert raised.value is error and not isinstance(raised.value, ImageError)
    # the image's own faults are still the image's, one line naming it
    data = png_bytes((64, 64))
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match=r"cut.png: not a readable image"):
        with peek(tmp_path / "cut.png", decode=True):
            pass


def test_links_named_like_the_output_are_never_followed(tmp_path):
    """A dangling link and a link to a file outside, each named like the next output: both are
    left untouched (the outside file too) and each image takes the next free name."""
    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    (outside / "precious.png").write_bytes(b"keep me")
    (out / "x.png").symlink_to(outside / "not-yet.png")  # dangling
    (out / "x-1.png").symlink_to(outside / "precious.png")
    first = save_image(Image.new("RGB", (4, 4)), out, "x", {"prompt": "p"})
    assert first == out.resolve() / "x-2.png" and not first.is_symlink()
    assert not (outside / "not-yet.png").exists()  # the dangling link was not written through
    assert (outside / "precious.png").read_bytes() == b"keep me"
    assert os.readlink(out / "x.png") == str(outside / "not-yet.png")
    assert os.readlink(out / "x-1.png") == str(outside / "precious.png")
    assert read_metadata(first)["visionloop"] == {"prompt": "p"}
    assert sorted(p.name for p in outside.iterdir()) == ["precious.png"]


def test_info_reports_each_bad_file_and_still_shows_the_good_ones(cli, tmp_path):
    good = save_image(Image.new("RGB", (8, 8)), tmp_path, "x", {"prompt": "p", "seed": 1})
    (tmp_path / "bad.png").write_text("not an image")
    result = cli("info", good, tmp_path / "bad.png")
    assert result.code == 1
    assert result.out.splitlines()[0] == f"{good}: PNG 8x8"
    assert result.err.strip() == (f"error: {tmp_path / 'bad.png'}: not a supported image "
                                  "(supported: PNG, JPEG, WebP, BMP, GIF, TIFF)")
    records = results(cli("info", good, tmp_path / "bad.png", "--json").out)
    assert records[0]["visionloop"]["seed"] == 1 and records[1]["file"] == str(tmp_path / "bad.png")
    assert "not a supported image" in records[1]["error"]
    for blank in ("", " "):  # not "." (the current folder)
        result = cli("info", blank)
        assert result.code == 2 and result.err.strip() == "error: IMAGE: expected a file path, got an empty string"
    result = cli("info", "~nosuchuser-vl/x.png")
    assert result.code == 1
    assert result.err.startswith("error: IMAGE: ~nosuchuser-vl/x.png: '~nosuchuser-vl' names no home")


def test_a_nul_byte_in_a_path_is_a_one_line_image_error(tmp_path):
    from visionloop.images import ensure_output_dir

    with pytest.raises(ImageError) as err:
        load_image("a\x00b.png")
    assert str(err.value) == "'a\\x00b.png': not a usable file name (it contains a NUL byte)"
    with pytest.raises(VisionloopError) as err:
        ensure_output_dir("out\x00dir")
    assert str(err.value) == "'out\\x00dir': a file name cannot contain a NUL byte"


def test_fifos_and_devices_are_not_images_and_never_block(tmp_path, cli):
    from visionloop.images import peek

    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)  # no writer: opening it would block for ever
    assert reason(fifo) == "is a named pipe (FIFO), not an image file"
    assert reason("/dev/zero") == "is a device, not an image file"
    with pytest.raises(ImageError, match=r"pipe.png: is a named pipe \(FIFO\), not an image file"):
        with peek(fifo):
            pass
    result = cli("info", fifo)
    assert result.code == 1 and result.err == f"error: {fifo}: is a named pipe (FIFO), not an image file\n"


def test_a_failed_write_leaves_no_empty_image_behind(tmp_path, monkeypatch):
    import errno

    import visionloop.images.save as save_mod

    def full_disk(path, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(save_mod, "atomic_write_bytes", full_disk)
    with pytest.raises(VisionloopError, match="cannot write image: No space left on device"):
        save_image(Image.new("RGB", (8, 8)), tmp_path, "full")
    assert list(tmp_path.iterdir()) == []


def test_json_records_of_names_that_are_not_utf8_are_still_written(tmp_path):
    from visionloop.images import atomic_write_json

    name = os.fsdecode(b"bad\xff.png")  # what os.listdir gives for such a name
    atomic_write_json(tmp_path / "r.json", {"input": name, "caption": "café"})
    assert json.loads((tmp_path / "r.json").read_text(encoding="utf-8")) == {"input": name, "caption": "café"}
