"""Reading order on synthetic boxes: no OCR engine, so these pin the layout rules exactly."""

import math

from visionloop.models.reading_order import TextBox, lines_text, order_lines, skew_angle


def box(text, x0, y0, x1, y1, conf=0.9):
    return TextBox(text, [(x0, y0), (x1, y0), (x1, y1), (x0, y1)], conf)


def rotated(text, x0, y0, x1, y1, degrees):
    """An axis-aligned box turned about the origin, like a line on a tilted page."""
    a = math.radians(degrees)
    turn = lambda x, y: (x * math.cos(a) - y * math.sin(a), x * math.sin(a) + y * math.cos(a))  # noqa: E731
    return TextBox(text, [turn(x0, y0), turn(x1, y0), turn(x1, y1), turn(x0, y1)], 0.9)


def test_two_lines_come_out_top_to_bottom_whatever_the_engine_order():
    boxes = [box("second line", 10, 60, 200, 90), box("first", 10, 10, 80, 40), box("line", 95, 12, 160, 41)]
    lines = order_lines(boxes)
    assert [line.text for line in lines] == ["first line", "second line"]
    assert lines[0].box == [10, 10, 160, 41]
    assert lines_text(lines) == "first line\nsecond line"


def test_two_columns_read_left_column_first():
    boxes = [box("right one", 400, 10, 560, 40), box("left one", 10, 10, 170, 40),
             box("right two", 400, 60, 560, 90), box("left two", 10, 60, 170, 90)]
    assert lines_text(order_lines(boxes)) == "left one\nleft two\nright one\nright two"


def test_title_above_two_columns():
    boxes = [box("a title across both", 10, 10, 560, 50),
             box("L1", 10, 100, 170, 130), box("R1", 400, 100, 560, 130),
             box("L2", 10, 150, 170, 180), box("R2", 400, 150, 560, 180)]
    assert lines_text(order_lines(boxes)) == "a title across both\nL1\nL2\nR1\nR2"


def test_one_row_with_a_wide_gap_stays_one_line():
    # A label and its value far apart: one row, so it is not a pair of columns.
    boxes = [box("value", 500, 10, 600, 40), box("Total:", 10, 10, 100, 40)]
    assert lines_text(order_lines(boxes)) == "Total: value"


def test_slightly_rotated_lines_stay_whole():
    # At 4 degrees the right end of a 600 px line sits 42 px lower than its left end: more
    # than a line's height, so without deskewing its pieces would fall into different lines.
    boxes = [rotated("over the lazy dog", 320, 100, 600, 130, 4), rotated("The quick fox", 10, 100, 300, 130, 4),
             rotated("jumps high", 10, 160, 300, 190, 4)]
    assert abs(skew_angle(boxes) - math.radians(4)) < 1e-6
    assert lines_text(order_lines(boxes)) == "The quick fox over the lazy dog\njumps high"


def test_whitespace_is_normalised_and_empty_boxes_dropped():
    boxes = [box("  two   spaces ", 10, 10, 100, 40), box("   ", 120, 10, 150, 40)]
    lines = order_lines(boxes)
    assert [line.text for line in lines] == ["two spaces"]
    assert order_lines([]) == []


def test_confidence_is_weighted_by_length():
    line = order_lines([box("aaa", 0, 0, 30, 10, 1.0), box("b", 40, 0, 50, 10, 0.0)])[0]
    assert line.confidence == 0.75
    assert line.to_json() == {"text": "aaa b", "box": [0, 0, 50, 10], "confidence": 0.75, "kind": "paragraph"}
