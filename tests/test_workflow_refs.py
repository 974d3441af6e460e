"""The `${...}` grammar: look-ups only, one pass, a whole reference keeps its type."""

import pytest

from visionloop.workflows.refs import (Ref, RefError, Scope, StepValues, find_refs, literal_part, parse_ref, resolve,
                                  whole_ref)


@pytest.fixture
def scope():
    return Scope(inputs={"n": 3, "style": "ink", "flag": False},
                 steps={"a": StepValues(text="a cat", images=["/r/1.png", "/r/2.png"],
                                        data={"seed": 42, "size": [64, 64], "meta": {"k": 1}})})


def test_parse_each_form():
    assert parse_ref("inputs.style") == Ref("inputs", "style")
    assert parse_ref(" steps.a.text ") == Ref("steps", "a", "text")
    assert parse_ref("steps.a.images") == Ref("steps", "a", "images")
    assert parse_ref("steps.my-step.data.seed") == Ref("steps", "my-step", "data", "seed")
    assert str(Ref("steps", "a", "data", "seed")) == "${steps.a.data.seed}"


@pytest.mark.parametrize("body", ["steps.a.__class__", "inputs.x.upper()", "7*7", "steps.a", "inputs",
                                  "steps.a.data", "steps.a.text[0]", "inputs.a|attr('x')", "{ inputs.a }",
                                  "''.__class__.__mro__"])
def test_anything_but_a_lookup_is_refused(body):
    with pytest.raises(RefError, match="not a reference"):
        parse_ref(body)


def test_whole_reference_keeps_its_type(scope):
    assert resolve("${inputs.n}", scope) == 3
    assert resolve("${inputs.flag}", scope) is False
    assert resolve("${steps.a.images}", scope) == ["/r/1.png", "/r/2.png"]
    assert resolve("${steps.a.image}", scope) == "/r/1.png"
    assert resolve("${steps.a.data.size}", scope) == [64, 64]
    assert resolve({"x": ["${steps.a.data.seed}", 1]}, scope) == {"x": [42, 1]}


def test_inside_text_becomes_text(scope):
    assert resolve("${steps.a.text}, ${inputs.style} (${inputs.n})", scope) == "a cat, ink (3)"
    assert resolve("seeds ${steps.a.data.seed}; ${steps.a.images}", scope) == "seeds 42; /r/1.png, /r/2.png"
    assert resolve("flag=${inputs.flag} meta=${steps.a.data.meta}", scope) == 'flag=false meta={"k": 1}'
    assert resolve("cost $${inputs.n} = ${inputs.n}", scope) == "cost ${inputs.n} = 3"


def test_produced_text_is_inserted_literally_in_one_pass(scope):
    scope.steps["ocr"] = StepValues(text="${inputs.n} {{ 7*7 }} $(rm -rf ~) ${steps.a.text}")
    assert resolve("${steps.ocr.text}", scope) == "${inputs.n} {{ 7*7 }} $(rm -rf ~) ${steps.a.text}"
    assert resolve("said: ${steps.ocr.text}!", scope) == "said: ${inputs.n} {{ 7*7 }} $(rm -rf ~) ${steps.a.text}!"


def test_runtime_failures_say_why(scope):
    scope.steps["b"] = StepValues(text="no picture")
    with pytest.raises(RefError, match="step 'b' produced no image"):
        resolve("${steps.b.image}", scope)
    with pytest.raises(RefError, match=r"has no data key 'nope' \(it has: meta, seed, size\)"):
        resolve("x ${steps.a.data.nope}", scope)
    with pytest.raises(RefError, match="has not run"):
        resolve("${steps.zz.text}", scope)


def test_find_refs_reports_malformed_and_unclosed():
    refs, bad = find_refs({"a": ["${inputs.x} and ${steps.s.text}", "${oops}"], "b": "open ${inputs.y"})
    assert refs == [Ref("inputs", "x"), Ref("steps", "s", "text")]
    assert len(bad) == 2 and "not a reference: '${oops}'" in bad[0] and "unclosed" in bad[1]
    assert whole_ref(" ${inputs.x} ") == Ref("inputs", "x") and whole_ref("a ${inputs.x}") is None


def test_literal_part_is_what_every_substitution_keeps():
    assert literal_part("a ${steps.s.text} b ${inputs.x}") == "a  b "
    assert literal_part("cost $${inputs.n}!") == "cost ${inputs.n}!"  # as resolve writes it
    assert literal_part("no refs") == "no refs"
