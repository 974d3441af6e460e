"""`read-text`: engine selection and fallbacks, reading order on rendered images, no-text
images, one engine for many images, and the llava engine against raw transformers."""

from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from visionloop.errors import ModelError
from visionloop.models import ocr
from visionloop.tools import ToolCall

DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


def render(path: Path, rows: list[list[str]], size=26, col_width=330) -> Path:
    """Rows of cells on white; each cell starts `col_width` px right of the previous one."""
    f = ImageFont.truetype(str(DEJAVU), size) if DEJAVU.exists() else ImageFont.load_default(size=size)
    width = 40 + max(c * col_width + int(f.getlength(cell)) for row in rows for c, cell in enumerate(row))
    img = Image.new("RGB", (width, 30 + int(size * 1.7) * len(rows)), "white")
    draw = ImageDraw.Draw(img)
    for r, row in enumerate(rows):
        for c, cell in enumerate(row):
            draw.text((20 + c * col_width, 15 + r * int(size * 1.7)), cell, font=f, fill="black")
    img.save(path)
    return path


def read(loop, *images, **args):
    return loop.call(ToolCall("read-text", {"image": [str(i) for i in images], **args}))


# --- engine selection ------------------------------------------------------------------------

def test_auto_without_tesseract_uses_rapidocr(monkeypatch):
    monkeypatch.setattr(ocr, "tesseract_path", lambda: None)
    assert ocr.resolve_engine("auto") == "rapidocr"


def test_auto_falls_back_to_tesseract_without_rapidocr(monkeypatch):
    monkeypatch.setattr(ocr, "rapidocr_available", lambda: False)
    monkeypatch.setattr(ocr, "tesseract_path", lambda: "/usr/bin/tesseract")
    assert ocr.resolve_engine("auto") == "tesseract"
    monkeypatch.setattr(ocr, "tesseract_path", lambda: None)
    with pytest.raises(ModelError, match="pip install rapidocr-onnxruntime"):
        ocr.resolve_engine("auto")


def test_tesseract_missing_is_one_line_naming_the_package(monkeypatch, tmp_path, cli):
    monkeypatch.setattr(ocr, "tesseract_path", lambda: None)
    with pytest.raises(ModelError) as err:
        ocr.resolve_engine("tesseract")
    assert "tesseract-ocr" in str(err.value) and "\n" not in str(err.value)
    image = render(tmp_path / "one.png", [["hello"]])
    result = cli("read-text", image, "--engine", "tesseract")
    assert result.code == 1
    assert result.err.strip().splitlines() == [f"error: {ocr.TESSERACT_MISSING}"]


def test_unknown_engine_is_a_one_line_error_listing_the_engines(tmp_path, cli):
    result = cli("read-text", render(tmp_path / "one.png", [["hello"]]), "--engine", "paddle")
    # an invalid choice is a usage error (exit 2) since choices are checked by argparse
    assert result.code == 2
    assert "invalid choice: 'paddle' (choose from 'auto', 'rapidocr', 'tesseract', 'llava')" in result.err
    assert "Traceback" not in result.err


def test_tesseract_tsv_words_are_grouped_into_lines():
    header = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext"
    rows = ["5\t1\t1\t1\t1\t1\t10\t10\t40\t20\t90\tGate", "5\t1\t1\t1\t1\t2\t60\t12\t30\t20\t70\tB42",
            "4\t1\t1\t1\t2\t0\t10\t40\t80\t20\t-1\t", "5\t1\t1\t1\t2\t1\t10\t40\t80\t20\t-1\t ",
            "5\t1\t1\t1\t2\t2\t10\t40\t80\t20\t95\tcloses", "5\t1\t1\t1\t2\t3\t300\t40\t60\t20\t95\tfar"]
    boxes = ocr.parse_tsv("\n".join([header, *rows]))
    assert [b.text for b in boxes] == ["Gate B42", "closes", "far"]  # "far" is a column away
    assert boxes[0].quad == [(10, 10), (90, 10), (90, 32), (10, 32)]
    assert boxes[0].confidence == pytest.approx((0.9 * 4 + 0.7 * 3) / 7)
    assert ocr.tesseract_lang("en+de") == "eng+deu" and ocr.tesseract_lang("chi_tra") == "chi_tra"


# --- reading with the default engine ---------------------------------------------------------

def test_two_lines_in_reading_order_with_boxes(loop, tmp_path):
    image = render(tmp_path / "two.png", [["Gate B42 closes at 07:15"], ["Meeting moved to Room 3"]])
    [result] = read(loop, image)
    assert result.error is None
    assert result.text == "Gate B42 closes at 07:15\nMeeting moved to Room 3"
    assert result.data["engine"] == "rapidocr" and result.data["requested_engine"] == "auto"
    import importlib.metadata

    # manifests record what produced the text, with its version
    assert result.data["model"] == f"rapidocr-onnxruntime {importlib.metadata.version('rapidocr-onnxruntime')}"
    first, second = result.data["lines"]
    assert first["text"] == "Gate B42 closes at 07:15" and 0.5 < first["confidence"] <= 1
    assert first["box"][3] <= second["box"][1] + 5  # the first line's box is above the second's
    assert first["box"][0] < 40


def test_two_columns_read_left_column_first(loop, tmp_path):
    image = render(tmp_path / "cols.png", [["Fresh bread", "Call us today"], ["every morning", "for a quote"]],
                   size=24, col_width=300)
    [result] = read(loop, image, engine="rapidocr")
    assert result.text.split("\n") == ["Fresh bread", "every morning", "Call us today", "for a quote"]


def test_image_without_text_gives_empty_text(loop, tmp_path):
    blank = tmp_path / "blank.png"
    Image.new("RGB", (200, 120), (40, 120, 200)).save(blank)
    [result] = read(loop, blank)
    assert result.error is None
    assert result.text == "" and result.data["lines"] == []


def test_several_images_share_one_engine(loop, tmp_path):
    a = render(tmp_path / "a.png", [["Platform 9"]])
    b = render(tmp_path / "b.png", [["Room 3"]])
    before = loop.ctx.models.loads["ocr:rapidocr"]
    results = read(loop, a, b, engine="rapidocr")
    assert [r.text for r in results] == ["Platform 9", "Room 3"]
    assert loop.ctx.models.loads["ocr:rapidocr"] == max(before, 1)


def test_bad_image_is_a_one_line_error(loop, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    [result] = read(loop, bad)
    assert result.error and str(bad) in result.error and "\n" not in result.error


@pytest.mark.needs("tesseract")  # conftest.py: skips without it, an error in CI
def test_tesseract_reads_two_lines(loop, tmp_path):
    image = render(tmp_path / "two.png", [["Gate B42 closes at 07:15"], ["Meeting moved to Room 3"]])
    [result] = read(loop, image, engine="tesseract", lang="en")
    assert result.error is None
    assert result.text == "Gate B42 closes at 07:15\nMeeting moved to Room 3"
    assert result.data["engine"] == "tesseract" and len(result.data["lines"]) == 2
    import re
    import subprocess

    version = subprocess.run([ocr.tesseract_path(), "--version"], capture_output=True, text=True).stdout.split()[1]
    assert result.data["model"] == f"tesseract {version}" and re.fullmatch(r"tesseract \d+\.\d+.*", result.data["model"])


# --- llava -----------------------------------------------------------------------------------

def test_llava_engine_matches_raw_generate_with_the_recorded_prompt(loop, tmp_path):
    import torch

    image = render(tmp_path / "two.png", [["Gate B42"], ["Room 3"]])
    [result] = read(loop, image, engine="llava", max_new_tokens=12)
    assert result.error is None and result.data["engine"] == "llava"
    assert "Read all the text" in result.data["prompt"]
    assert [line["text"] for line in result.data["lines"]] == [s.strip() for s in result.text.splitlines() if s.strip()]
    # The same weights, called the plain transformers way with the recorded prompt.
    llava = loop.ctx.models.llava()
    inputs = llava.processor(images=[Image.open(image).convert("RGB")], text=result.data["prompt"],
                             return_tensors="pt")
    with torch.inference_mode():
        out = llava.model.generate(**inputs, max_new_tokens=result.data["max_new_tokens"], do_sample=False)
    raw = llava.processor.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()
    assert result.text == raw


def test_the_configured_engine_is_the_default(loop, tmp_path, monkeypatch):
    from visionloop.config import OcrSettings
    from visionloop.context import Context
    from visionloop_plugins.read_text import read_text

    config = loop.ctx.config.model_copy(update={"ocr": OcrSettings(engine="tesseract", lang="de")})
    monkeypatch.setattr(ocr, "tesseract_path", lambda: None)
    with pytest.raises(ModelError, match="tesseract-ocr"):
        read_text(Context.create(config, tmp_path), str(render(tmp_path / "one.png", [["hello"]])))


def test_a_likely_space_at_a_blank_step_is_decoded():
    import numpy as np
    from rapidocr_onnxruntime.ch_ppocr_rec.utils import CTCLabelDecode

    decoder = CTCLabelDecode(character=["a", "b"])  # -> blank, a, b, space
    steps = [[0.1, 0.9, 0, 0], [0.7, 0, 0, 0.3], [0.1, 0, 0.9, 0], [0.97, 0, 0, 0.03], [0.1, 0, 0.9, 0]]
    preds = np.array([steps], dtype=np.float32)
    assert decoder(preds)[0][0] == "abb"  # greedy decoding glues the words
    assert ocr._SpaceAwareDecode(decoder, 0.05)(preds)[0][0] == "a bb"  # 0.3 is a space, 0.03 is not
    assert ocr._SpaceAwareDecode(decoder, 1.0)(preds)[0][0] == decoder(preds)[0][0]


# --- languages the engine cannot use ---------------------------------------------------------

def test_rapidocr_says_when_it_cannot_use_the_language():
    engine = ocr.RapidOcrEngine.__new__(ocr.RapidOcrEngine)  # lang_note needs no loaded model
    assert engine.lang_note("en") is None and engine.lang_note("en+zh") is None and engine.lang_note("ch") is None
    note = engine.lang_note("en+de")
    assert note.startswith("lang de is not used by the rapidocr engine") and "Chinese and English" in note


def test_read_text_lang_with_rapidocr_gives_a_note_the_cli_prints(loop, tmp_path, cli):
    image = render(tmp_path / "one.png", [["Platform 9"]])
    [default] = read(loop, image, engine="rapidocr")
    assert default.error is None and default.data["notes"] == []
    [german] = read(loop, image, engine="rapidocr", lang="de")
    assert german.text == default.text  # the model reads the same either way ...
    assert len(german.data["notes"]) == 1 and "lang de is not used" in german.data["notes"][0]  # ... and says so
    res = cli("read-text", image, "--engine", "rapidocr", "--lang", "de")
    assert res.code == 0 and res.out.strip() == "Platform 9"
    assert "note: lang de is not used by the rapidocr engine" in res.err
    res = cli("read-text", image, "--engine", "rapidocr", "--lang", "en")
    assert res.code == 0 and "note:" not in res.err


@pytest.mark.parametrize("lang", ["../../etc/passwd", "en+", "-", "en de", "en;rm"])
def test_a_malformed_lang_is_one_line_naming_the_argument(cli, tmp_path, lang):
    image = render(tmp_path / "one.png", [["Platform 9"]])
    for engine in ("rapidocr", "tesseract", "llava"):
        res = cli("read-text", image, "--engine", engine, "--lang", lang)
        assert res.code == 1 and res.out == "" and res.err.count("\n") == 1, res.err
        assert res.err.startswith("error: lang: expected language codes joined by '+'") and repr(lang) in res.err


def test_a_malformed_lang_in_the_config_names_the_config_key(cli, tmp_path, session_config_file):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(session_config_file.read_text() + "ocr: {lang: 'de/../x'}\n")
    res = cli("--config", cfg, "read-text", render(tmp_path / "one.png", [["Platform 9"]]), "--engine", "rapidocr")
    assert res.code == 1 and res.err.startswith("error: ocr.lang (in the config): expected language codes")


@pytest.mark.needs("tesseract")
def test_a_language_tesseract_lacks_is_one_line_naming_lang(cli, tmp_path):
    res = cli("read-text", render(tmp_path / "one.png", [["Platform 9"]]), "--engine", "tesseract", "--lang", "xx")
    assert res.code == 1 and res.err == "error: lang: tesseract has no language data for 'xx': install tesseract-ocr-xx\n"


def test_generation_settings_with_an_ocr_engine_are_noted(loop, tmp_path):
    image = render(tmp_path / "one.png", [["Platform 9"]])
    [result] = read(loop, image, engine="rapidocr", temperature=0.7, seed=3)
    assert result.error is None
    assert result.data["notes"] == ["temperature, seed: used by --engine llava only, not by rapidocr"]
