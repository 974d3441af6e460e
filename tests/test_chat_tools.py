"""The chat with the Stable Diffusion tools (tiny models): produced images join the list,
"it" then means the new picture, regions become boxes of the right image."""

from __future__ import annotations

def test_draw_edit_restyle_join_the_list(talk, pics):
    talk.say(f"/image {pics[0]}")
    out, err = talk.say("/draw --seed 1 a tiny red boat")
    assert err == "", err
    drawn = talk.chat.session.current
    assert drawn.number == 2 and drawn.source == "draw" and out.strip().endswith(f"#2 {drawn.path}")
    out, err = talk.say("put a yellow sun in the top left")  # of it: the drawing
    result = talk.chat.session.last_result
    assert err == "" and result.tool == "edit" and talk.chat.session.current.number == 3
    w, h = drawn.size  # the region is a box of the drawing, the image "it" meant
    assert result.data["image"] == drawn.path and result.data["box"] == [0, 0, round(w / 2), round(h / 2)]
    assert f"#3 {talk.chat.session.current.path}" in out
    out, err = talk.say("make #1 look like a watercolour painting")
    result = talk.chat.session.last_result
    assert err == "" and result.tool == "restyle" and result.data["image"] == pics[0]
    assert result.data.get("style") == "a watercolour painting"
    assert [p.number for p in talk.chat.session.images] == [1, 2, 3, 4]
    assert talk.chat.session.current.source == "restyle"
