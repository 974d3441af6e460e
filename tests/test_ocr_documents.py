"""`read-text` on document-like pictures rendered here (texts and layouts of these tests' own):
receipts and tables read row by row, text columns one after the other, pages at each of the
four turns, every line of a paragraph present, small print, and what is left out said."""

import json
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from visionloop.tools import ToolCall

FONTS = Path("/usr/share/fonts/truetype/dejavu")


def font(size: int, name: str = "DejaVuSans.ttf"):
    path = FONTS / name
    return ImageFont.truetype(str(path), size) if path.exists() else ImageFont.load_default(size=size)


def page(rows: list[list[tuple[int, str]]], size: int = 20, width: int = 520, lead: float = 1.6,
         name: str = "DejaVuSans.ttf", right: set[int] = frozenset()) -> Image.Image:
    """Rows of (x, text) cells on white; a cell whose x is in `right` is right-aligned there."""
    f = font(size, name)
    img = Image.new("RGB", (width, int(2 * size + lead * size * len(rows))), "white")
    draw = ImageDraw.Draw(img)
    for r, row in enumerate(rows):
        y = size + int(r * lead * size)
        for x, text in row:
            draw.text((x - f.getlength(text) if x in right else x, y), text, font=f, fill="black")
    return img


RECEIPT = [("Espresso", "2.40"), ("Oat milk latte", "3.95"), ("Banana bread", "4.20"), ("Sparkling water", "1.80"),
           ("Tip", "1.00")]
PROSE_LEFT = ["Tides rise twice a day along", "this coast, and the old pier", "floods at the highest ones.",
              "Fishermen tie their boats", "to rings set in the wall."]
PROSE_RIGHT = ["The lighthouse was built in", "brick after a storm broke", "the wooden tower that stood",
               "on the rocks for fifty years", "before it fell into the sea."]
PARAGRAPH = ["Every morning the baker lights the oven", "before the streets are awake, and by six",
             "the first loaves cool on racks by the door.", "Neighbours stop for warm rolls on the way",
             "to the station, and the queue reaches the", "corner on Saturdays when the market opens."]


def receipt_image() -> Image.Image:
    rows = [[(150, "HARBOUR CAFE")]] + [[(30, name), (470, price)] for name, price in RECEIPT]
    rows.append([(30, "TOTAL"), (470, "13.35")])
    return page(rows, name="DejaVuSansMono.ttf", right={470}, width=500)


def columns_image(size: int = 18) -> Image.Image:
    return page([[(20, left), (330, right)] for left, right in zip(PROSE_LEFT, PROSE_RIGHT)], size=size, width=640)


def paragraph_image(size: int = 20, width: int = 520) -> Image.Image:
    return page([[(20, line)] for line in PARAGRAPH], size=size, width=width)


def read(loop, tmp_path, img: Image.Image, name: str = "page.png", **args):
    path = tmp_path / name
    img.save(path)
    [result] = loop.call(ToolCall("read-text", {"image": [str(path)], "engine": "rapidocr", **args}))
    assert result.error is None, result.error
    return result


# --- tables and columns ----------------------------------------------------------------------

def test_a_receipt_is_read_row_by_row_with_cells_separated(loop, tmp_path):
    result = read(loop, tmp_path, receipt_image())
    lines = result.text.split("\n")
    assert lines == ["HARBOUR CAFE", *[f"{name}\t{price}" for name, price in RECEIPT], "TOTAL\t13.35"]
    kinds = [line["kind"] for line in result.data["lines"]]
    assert kinds[1:] == ["table-row"] * (len(RECEIPT) + 1)  # the title may be the table's first row
    assert result.data["lines"][1]["cells"] == ["Espresso", "2.40"]
    table = [b for b in result.data["blocks"] if b["kind"] == "table"]
    assert len(table) == 1 and table[0]["lines"][-1]["cells"] == ["TOTAL", "13.35"]
    piped = read(loop, tmp_path, receipt_image(), table="pipes")
    assert piped.text.split("\n")[1] == "Espresso | 2.40" and piped.data["table"] == "pipes"


def test_a_two_column_page_is_read_column_by_column(loop, tmp_path):
    result = read(loop, tmp_path, columns_image())
    assert result.text.split("\n") == PROSE_LEFT + PROSE_RIGHT
    assert {b["kind"] for b in result.data["blocks"]} == {"column"}
    assert [line["kind"] for line in result.data["lines"]] == ["column"] * 10


def test_a_table_and_two_columns_are_told_apart(loop, tmp_path):
    table = page([[(20, "Item"), (300, "Price")], [(20, "Lamp oil"), (300, "6.50")],
                  [(20, "Rope 10 m"), (300, "12.00")], [(20, "Lantern"), (300, "24.90")]], width=420)
    as_table = read(loop, tmp_path, table, "table.png")
    assert [b["kind"] for b in as_table.data["blocks"]] == ["table"]
    assert as_table.text.split("\n") == ["Item\tPrice", "Lamp oil\t6.50", "Rope 10 m\t12.00", "Lantern\t24.90"]
    as_columns = read(loop, tmp_path, columns_image(), "columns.png")
    assert "table" not in {b["kind"] for b in as_columns.data["blocks"]}


def test_the_layout_can_be_forced(loop, tmp_path):
    img = columns_image()
    across = read(loop, tmp_path, img, layout="lines")
    assert across.text.split("\n")[0] == f"{PROSE_LEFT[0]} {PROSE_RIGHT[0]}" and across.data["layout"] == "lines"
    cells = read(loop, tmp_path, img, layout="table")
    assert cells.text.split("\n")[0] == f"{PROSE_LEFT[0]}\t{PROSE_RIGHT[0]}"
    no_tables = read(loop, tmp_path, receipt_image(), layout="blocks")
    assert no_tables.text.split("\n")[1:3] == ["Espresso", "Oat milk latte"]  # names first, then prices


# --- orientation -----------------------------------------------------------------------------

@pytest.mark.parametrize("turn", [0, 90, 180, 270])
def test_a_page_reads_the_same_at_each_turn(loop, tmp_path, turn):
    img = paragraph_image(size=18, width=460).rotate(turn, expand=True)
    result = read(loop, tmp_path, img, f"turn{turn}.png")
    assert result.text.split("\n") == PARAGRAPH
    assert result.data["orientation"] == turn
    # boxes are in the picture's own pixels, whichever way it was turned
    width, height = img.size
    for line in result.data["lines"]:
        x0, y0, x1, y1 = line["box"]
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
        assert (x1 - x0 > y1 - y0) == (turn in (0, 180))  # a line lies along the page's text direction
    assert bool(turn) == any("turned" in note for note in result.data["notes"])


def test_one_line_the_direction_classifier_calls_upside_down_is_still_read(loop, tmp_path, monkeypatch):
    """The lost line: RapidOCR flipped each line its classifier called upside down (one call in
    ten is wrong on upright print) and then dropped the garbage without a word. The page's turn
    is now decided from all its lines together, and no line is flipped on its own."""
    engine = loop.ctx.models.ocr("rapidocr")
    real = engine.classify

    def one_wrong(crops):
        calls = real(crops)
        return [("180", 0.99)] + calls[1:]  # the classifier's confident mistake on one line

    monkeypatch.setattr(engine, "classify", one_wrong)
    result = read(loop, tmp_path, paragraph_image())
    assert result.text.split("\n") == PARAGRAPH and result.data["orientation"] == 0


# --- nothing left out silently ---------------------------------------------------------------

def test_every_line_of_a_paragraph_is_present(loop, tmp_path):
    result = read(loop, tmp_path, paragraph_image(), min_confidence=0)
    assert result.text.split("\n") == PARAGRAPH
    assert result.data["dropped"] == [] and result.data["notes"] == []
    assert all(line["confidence"] > 0.8 and line["kind"] == "paragraph" for line in result.data["lines"])


def test_lines_below_min_confidence_are_listed_not_lost(loop, tmp_path):
    result = read(loop, tmp_path, paragraph_image(), min_confidence=1.0)
    assert result.text == "" and result.data["lines"] == []
    assert [d["text"] for d in result.data["dropped"]] == PARAGRAPH  # every one, top to bottom
    assert all(d["reason"].endswith("below --min-confidence 1") for d in result.data["dropped"])
    assert result.data["notes"] == [f"{len(PARAGRAPH)} lines below --min-confidence 1 left out "
                                     "(listed in data.dropped with --json)"]


# --- small print -----------------------------------------------------------------------------

def cer(got: str, truth: str) -> float:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    from ocr_accuracy import cer as benchmark_cer  # the benchmark's scorer

    return benchmark_cer(got, truth)


def test_small_print_is_enlarged_and_read(loop, tmp_path):
    result = read(loop, tmp_path, page([[(12, line)] for line in PARAGRAPH], size=12, width=300))
    assert result.data["scale"] > 1.5
    assert len(result.data["lines"]) == len(PARAGRAPH)  # no fragments, no line lost
    assert cer(result.text, "\n".join(PARAGRAPH)) < 0.02
    for line in result.data["lines"]:  # boxes in the picture's own pixels, not the enlarged page's
        assert line["box"][2] <= 300


def test_normal_print_is_not_enlarged(loop, tmp_path):
    assert read(loop, tmp_path, paragraph_image(size=22, width=560)).data["scale"] == 1.0


# --- the command line ------------------------------------------------------------------------

def test_cli_flags_and_json(cli, tmp_path):
    path = tmp_path / "receipt.png"
    receipt_image().save(path)
    res = cli("read-text", path, "--engine", "rapidocr", "--table", "pipes")
    assert res.code == 0 and "Espresso | 2.40\n" in res.out
    res = cli("--json", "read-text", path, "--engine", "rapidocr", "--min-confidence", "0.2", "--layout", "auto")
    assert res.code == 0, res.err
    data = json.loads(res.out.splitlines()[0])["data"]  # the result line (JSON Lines: a summary follows)
    assert data["min_confidence"] == 0.2 and data["engine_version"] and data["orientation"] == 0
    assert {"blocks", "dropped", "scale", "layout", "table"} <= set(data)
    res = cli("read-text", path, "--engine", "rapidocr", "--min-confidence", "2")
    assert res.code != 0 and "min_confidence" in res.err.replace("-", "_")
    res = cli("read-text", path, "--engine", "rapidocr", "--layout", "grid")
    assert res.code == 2 and "invalid choice: 'grid'" in res.err


@pytest.mark.needs("tesseract")
def test_tesseract_reads_a_receipt_as_rows_too(loop, tmp_path):
    path = tmp_path / "receipt.png"
    receipt_image().save(path)
    # min_confidence 0: Tesseract reads some of this monospaced print poorly; the rows are the point
    [result] = loop.call(ToolCall("read-text", {"image": [str(path)], "engine": "tesseract", "lang": "en",
                                                "min_confidence": 0}))
    assert result.error is None
    rows = [line["cells"] for line in result.data["lines"] if line["kind"] == "table-row"]
    assert [cells[0] for cells in rows[-6:]] == [name for name, _ in RECEIPT] + ["TOTAL"]
    assert all(len(cells) == 2 for cells in rows[-6:]) and result.data["engine_version"]
