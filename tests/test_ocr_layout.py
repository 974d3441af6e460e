"""Layout, orientation and filtering on synthetic boxes: no OCR engine, so these pin the rules
exactly (tables vs columns, forced layouts, turns and their inverse, what is left out)."""

import numpy as np
import pytest

from visionloop.models.ocr_layout import arrange, blocks_text, is_number
from visionloop.models.ocr_orientation import is_sideways, page_turn, turn_points, unturn_points, upright
from visionloop.models.ocr_reading import Page, assemble
from visionloop.models.reading_order import TextBox, lines_text, order_lines


def box(text, x0, y0, x1, y1, conf=0.95):
    return TextBox(text, [(x0, y0), (x1, y0), (x1, y1), (x0, y1)], conf)


def receipt_boxes():
    """Item names on the left, prices right-aligned at x=400, a centred title, a TOTAL row
    further down past a rule."""
    items = [("Bread", "3.20"), ("Cheese board", "11.50"), ("Apple juice", "2.75"), ("Soup of the day", "6.90")]
    boxes = [box("CORNER SHOP", 150, 10, 290, 35)]
    for i, (name, price) in enumerate(items):
        y = 60 + 35 * i
        boxes += [box(name, 20, y, 20 + 12 * len(name), y + 25), box(price, 400 - 12 * len(price), y, 400, y + 25)]
    boxes += [box("TOTAL", 20, 260, 80, 285), box("24.35", 340, 260, 400, 285)]
    return boxes


def test_a_receipt_reads_row_by_row():
    blocks = arrange(receipt_boxes())
    assert blocks_text(blocks).split("\n") == ["CORNER SHOP", "Bread\t3.20", "Cheese board\t11.50", "Apple juice\t2.75",
                                               "Soup of the day\t6.90", "TOTAL\t24.35"]
    assert blocks[-1].kind == "table" and blocks[-1].lines[-1].cells == ["TOTAL", "24.35"]
    assert {line.kind for line in blocks[-1].lines} == {"table-row"}


def test_pipes_separate_cells_when_asked():
    assert lines_text(order_lines(receipt_boxes(), separator=" | ")).split("\n")[1] == "Bread | 3.20"


def test_a_total_row_past_a_gap_joins_the_table_above():
    boxes = [box("Title across everything at the top", 20, 0, 400, 25)] + receipt_boxes()[1:9]
    boxes += [box("TOTAL", 20, 230, 80, 255), box("24.35", 340, 230, 400, 255)]  # below a wider gap
    assert lines_text(order_lines(boxes)).split("\n")[-1] == "TOTAL\t24.35"


def test_text_columns_are_not_a_table():
    left = ["The harbour wall was raised", "after the winter storms of", "the year the ferry sank."]
    right = ["Trains now run every hour", "from the station to the", "airport and the old town."]
    boxes = [box(t, 10, 10 + 30 * i, 240, 35 + 30 * i) for i, t in enumerate(left)]
    boxes += [box(t, 300, 10 + 30 * i, 530, 35 + 30 * i) for i, t in enumerate(right)]
    blocks = arrange(boxes)
    assert [b.kind for b in blocks] == ["column", "column"]
    assert blocks_text(blocks).split("\n") == left + right


def test_short_words_without_numbers_stay_columns_but_a_form_is_a_table():
    lists = [box("Fresh bread", 10, 10, 140, 35), box("Call us today", 300, 10, 460, 35),
             box("every morning", 10, 50, 170, 75), box("for a quote", 300, 50, 430, 75)]
    assert lines_text(order_lines(lists)) == "Fresh bread\nevery morning\nCall us today\nfor a quote"
    form = [box("Name:", 10, 10, 80, 35), box("Ada Lovelace", 200, 10, 340, 35),
            box("Born:", 10, 50, 70, 75), box("London", 200, 50, 290, 75)]
    assert lines_text(order_lines(form)) == "Name:\tAda Lovelace\nBorn:\tLondon"


def test_three_columns_of_short_cells_are_a_table():
    rows = [("Oslo", "Bergen", "Tromso"), ("Lima", "Cusco", "Arequipa"), ("Kyoto", "Osaka", "Nara")]
    boxes = [box(cell, 10 + 200 * c, 10 + 40 * r, 10 + 200 * c + 12 * len(cell), 35 + 40 * r)
             for r, row in enumerate(rows) for c, cell in enumerate(row)]
    assert lines_text(order_lines(boxes)).split("\n") == ["\t".join(row) for row in rows]


def test_forced_layouts():
    boxes = receipt_boxes()
    assert lines_text(order_lines(boxes, "lines")).split("\n")[1] == "Bread 3.20"
    blocks = lines_text(order_lines(boxes, "blocks")).split("\n")
    assert blocks[1:5] == ["Bread", "Cheese board", "Apple juice", "Soup of the day"]  # names, then prices
    assert lines_text(order_lines(boxes, "table")).split("\n")[1] == "Bread\t3.20"
    with pytest.raises(ValueError, match="layout"):
        arrange(boxes, "grid")


@pytest.mark.parametrize("text, number", [("12.50", True), ("€3,99", True), ("09:45", True), ("2", True),
                                          ("14/11/2025", True), ("12 kg", True), ("Room 3", False),
                                          ("Bread", False), ("", False)])
def test_numbers(text, number):
    assert is_number(text) is number


# --- orientation ------------------------------------------------------------------------------

@pytest.mark.parametrize("turn", [0, 90, 180, 270])
def test_turning_points_back_and_forth(turn):
    width, height = 300, 200
    picture = np.zeros((height, width), dtype=np.uint8)
    picture[20, 50] = 1  # one marked pixel, turned with numpy as a page would be
    turned = np.rot90(picture, k=turn // 90)  # counter-clockwise, as PIL's rotate
    y, x = np.argwhere(turned)[0]
    th, tw = turned.shape
    back = turn_points(np.array([[x + 0.5, y + 0.5]]), turn, tw, th)
    assert np.allclose(back, [[50.5, 20.5]])
    assert np.array_equal(upright(turned, turn), picture)
    assert np.allclose(unturn_points(back, turn, tw, th), [[x + 0.5, y + 0.5]])


def test_sideways_is_decided_by_line_length_not_count():
    tall = [np.array([[0, 0], [20, 0], [20, 300], [0, 300]], dtype=np.float32)]
    digits = [np.array([[0, 0], [10, 0], [10, 20], [0, 20]], dtype=np.float32)] * 5  # single digits
    wide = [np.array([[0, 0], [300, 0], [300, 20], [0, 20]], dtype=np.float32)]
    assert is_sideways(tall) and not is_sideways(wide + digits) and not is_sideways([])


def test_page_turn_votes_and_falls_back_to_recognition():
    quads = [np.array([[0, 10 * i], [200, 10 * i], [200, 10 * i + 8], [0, 10 * i + 8]], dtype=np.float32)
             for i in range(5)]
    crop = lambda q: np.zeros((8, 200, 3), dtype=np.uint8)  # noqa: E731
    never = lambda crops: pytest.fail("recognition is not needed for a clear vote")  # noqa: E731
    # four lines say upright, one (wrongly and confidently) upside down: the page is upright
    votes = lambda crops: [("0", 0.95)] * 4 + [("180", 0.99)]  # noqa: E731
    assert page_turn(quads, crop, votes, never)[0] == 0
    assert page_turn(quads, crop, lambda crops: [("180", 0.97)] * 5, never)[0] == 180
    # a split vote: the turn whose reading is more confident wins
    split = lambda crops: [("0", 0.6), ("180", 0.6)] * 3  # noqa: E731
    reads = lambda crops: [("garbage", 0.2)] * 3 + [("a fine line", 0.97)] * 3  # noqa: E731
    turn, evidence = page_turn(quads, crop, split, reads)
    assert turn == 180 and evidence["by"] == "recognition confidence"
    assert page_turn([], crop, split, reads) == (0, {"by": "no text"})


# --- what is left out, and where boxes are ----------------------------------------------------

def test_assemble_lists_what_it_leaves_out_and_maps_boxes_back():
    # a 100 x 60 picture turned 90 degrees and read enlarged twice: upright it is 120 x 200
    page = Page([box("kept line", 10, 20, 110, 40), box("", 10, 60, 50, 80), box("faint", 10, 100, 60, 120, 0.3)],
                size=(100, 60), orientation=90, scale=2.0)
    reading = assemble("test", page, min_confidence=0.5)
    assert reading.text == "kept line" and reading.orientation == 90 and reading.scale == 2.0
    assert [(d["text"], d["reason"]) for d in reading.dropped] == [
        ("", "no text recognised"), ("faint", "confidence 0.30 below --min-confidence 0.5")]
    # upright (x, y) on the enlarged page -> (y, 120 - x) turned back -> halved
    assert reading.lines[0].box == [10, 5, 20, 55]
    assert reading.blocks[0].to_json()["box"] == [10, 5, 20, 55]


@pytest.mark.parametrize("read, text", [("12 .84", "12.84"), ("13 . 34", "13.34"), ("13. 34", "13.34"),
                                        ("12 Mill Street， Leeds", "12 Mill Street, Leeds"),
                                        ("the soil,spread", "the soil, spread"), ("1,234.56", "1,234.56"),
                                        ("In 2024, 12 people", "In 2024, 12 people"), ("中文，好", "中文，好")])
def test_the_recognisers_habits_are_undone_in_latin_text(read, text):
    from visionloop.models.ocr_rapidocr import tidy

    assert tidy(read) == text
