"""Workflow validation: every problem at once, each as FILE:LINE: path: message, no model loaded."""

import textwrap
from pathlib import Path

import pytest

from visionloop.workflows import WorkflowError, check_text, load_workflow

ROOT = Path(__file__).resolve().parent.parent


def problems(text, registry, source="wf.yaml"):
    spec, found = check_text(textwrap.dedent(text).lstrip("\n"), source, registry)
    assert (spec is None) == bool(found)
    return [str(p) for p in found]


GOOD = """
name: good
inputs:
  words: {type: text}
  n: {type: int, default: 2}
steps:
  - id: a
    tool: echo
    with: {text: "${inputs.words}", times: "${inputs.n}"}
  - id: b
    tool: paint
    with:
      prompt: "${steps.a.text} in blue"
      strength: 0.25
outputs:
  picture: "${steps.b.image}"
"""


def test_a_good_workflow_has_no_problems(fakes):
    assert problems(GOOD, fakes) == []


def test_unknown_fields_with_did_you_mean(fakes):
    found = problems("""
        name: x
        descripton: typo at the top
        inputs:
          words: {type: text, defualt: hi}
        steps:
          - id: a
            tool: echo
            wiht: {text: hi}
        """, fakes)
    assert "wf.yaml:2: (top): unknown field 'descripton' (did you mean 'description'?)" in found
    assert "wf.yaml:4: inputs.words: unknown field 'defualt' (did you mean 'default'?)" in found
    assert "wf.yaml:8: steps[0]: unknown field 'wiht' (did you mean 'with'?)" in found


def test_unknown_tool_lists_the_tools(fakes):
    found = problems("name: x\nsteps:\n  - id: a\n    tool: pain\n", fakes)
    assert len(found) == 1
    assert found[0].startswith("wf.yaml:4: steps[0].tool: unknown tool 'pain' (did you mean 'paint'?) (tools: ")
    assert "echo" in found[0] and "paint" in found[0]


def test_broken_plugin_is_named_with_unknown_tool(fakes, monkeypatch):
    monkeypatch.setitem(fakes.broken, "fancy", "ImportError: no module named fancylib")
    found = problems("name: x\nsteps:\n  - id: a\n    tool: fancy-draw\n", fakes)
    assert "broken plugin fancy: ImportError: no module named fancylib" in found[0]


def test_arguments_unknown_wrong_type_out_of_range_missing(fakes):
    found = problems("""
        name: x
        steps:
          - id: a
            tool: paint
            with:
              promt: a cat
              strength: 1.5
              seed: lots
          - id: b
            tool: echo
            with:
              times: 2
        """, fakes)
    assert found == [
        "wf.yaml:5: steps[0].with: paint needs argument 'prompt'",
        "wf.yaml:6: steps[0].with.promt: paint takes no argument 'promt' (did you mean 'prompt'?) "
        "(it takes: prompt, strength, seed, image)",
        "wf.yaml:7: steps[0].with.strength: must be at most 1, got 1.5",
        "wf.yaml:8: steps[0].with.seed: expected a whole number, got 'lots'",
        "wf.yaml:11: steps[1].with: echo needs argument 'text'",
    ]


def test_norway_problem_says_quote_the_value(fakes):
    found = problems("""
        name: x
        steps:
          - id: a
            tool: echo
            with: {text: no}
          - id: b
            tool: echo
            with:
              text: 1.10
        """, fakes)
    assert found[0].startswith("wf.yaml:5: steps[0].with.text: expected text, got bool no/false (quote the value")
    assert found[1].startswith("wf.yaml:9: steps[1].with.text: expected text, got float 1.1 (quote the value")
    named = problems("name: no\nsteps:\n  - {id: a, tool: echo, with: {text: hi}}\n", fakes)
    assert named == ["wf.yaml:1: name: Input should be a valid string (got False); quote the value to keep it as text"]


def test_references_unknown_input_unknown_step_later_step_self(fakes):
    found = problems("""
        name: x
        inputs:
          words: {type: text}
        steps:
          - id: a
            tool: echo
            with: {text: "${inputs.wrds} ${steps.b.text}"}
          - id: b
            tool: echo
            with: {text: "${steps.b.text}"}
          - id: c
            tool: echo
            with: {text: "${steps.nope.text}"}
        outputs:
          out: "${steps.zzz.image}"
        """, fakes)
    assert found == [
        "wf.yaml:7: steps[0].with.text: ${inputs.wrds}: unknown input 'wrds' (did you mean 'words'?) (inputs: words)",
        "wf.yaml:7: steps[0].with.text: ${steps.b.text}: step 'b' runs later; a step can only use earlier steps",
        "wf.yaml:10: steps[1].with.text: ${steps.b.text}: a step cannot refer to itself",
        "wf.yaml:13: steps[2].with.text: ${steps.nope.text}: unknown step 'nope' (steps: a, b)",
        "wf.yaml:15: outputs.out: ${steps.zzz.image}: unknown step 'zzz' (steps: a, b, c)",
    ]


@pytest.mark.parametrize("expr", ["${steps.a.__class__}", "${{ steps.a.text }}", "${inputs.words.upper()}",
                                  "${7*7}", "${steps.a.data.x.y}"])
def test_expressions_are_rejected_by_the_grammar(fakes, expr):
    found = problems(f"""
        name: x
        inputs: {{words: {{type: text}}}}
        steps:
          - id: a
            tool: echo
            with: {{text: hi}}
        outputs:
          out: "{expr}"
        """, fakes)
    assert len(found) == 1 and found[0].startswith("wf.yaml:8: outputs.out: not a reference")


def test_duplicate_step_ids_list_of_images_into_single_input_and_bad_file_names(fakes):
    found = problems("""
        name: x
        steps:
          - id: a
            tool: paint
            with: {prompt: hi}
          - id: a
            tool: paint
            with: {prompt: hi}
          - id: c
            tool: paint
            with: {prompt: hi, image: "${steps.a.images}"}
        files:
          ../escape.txt: hi
          notes.sh: hi
        """, fakes)
    assert found[0] == "wf.yaml:6: steps[1].id: duplicate step id 'a' (also steps[0])"
    assert found[1].startswith("wf.yaml:11: steps[2].with.image: ${steps.a.images} is a list of images")
    assert found[2].startswith("wf.yaml:13: files.../escape.txt: file name '../escape.txt' must be a plain name")
    assert found[3].startswith("wf.yaml:14: files.notes.sh: file name 'notes.sh'")


def test_schema_errors_missing_steps_bad_types(fakes):
    found = problems("name: x\ninputs:\n  n: {type: number}\nsteps: []\n", fakes)
    assert any(p.startswith("wf.yaml:3: inputs.n.type: Input should be") for p in found)
    assert any(p.startswith("wf.yaml:4: steps: List should have at least 1 item") for p in found)
    assert problems("- just a list\n", fakes) == ["wf.yaml:1: (top): a workflow must be a mapping with name "
                                                  "and steps, got a list"]


def test_reference_types_must_fit_the_argument(fakes):
    found = problems("""
        name: x
        inputs:
          s: {type: text}
          photo: {type: image}
          mood: {type: choice, choices: [calm, wild]}
          detail: {type: choice, choices: [short, long, epic]}
          n: {type: int, default: 1}
          f: {type: float, default: 0.5}
        steps:
          - id: cap
            tool: caption
            with: {image: "${inputs.s}", detail: "${inputs.detail}"}
          - id: pic
            tool: draw
            with: {prompt: "${inputs.photo}", guidance: "${inputs.mood}", steps: "${inputs.f}", seed: "${inputs.n}"}
          - id: p2
            tool: paint
            with: {prompt: "${steps.cap.text}", strength: "${inputs.n}", image: "${steps.cap.text}"}
          - id: p3
            tool: paint
            with: {prompt: "${steps.p2.image}", image: "${steps.p2.image}", seed: "${steps.p2.data.seed}"}
        """, fakes)
    assert found == [
        "wf.yaml:12: steps[0].with.image: ${inputs.s} is a text input but caption's 'image' takes an image "
        "(declare the input `type: image`)",
        "wf.yaml:12: steps[0].with.detail: ${inputs.detail} may be 'epic', which caption's 'detail' does not take "
        "(it takes: short, long)",
        "wf.yaml:15: steps[1].with.guidance: ${inputs.mood} is a choice input but draw's 'guidance' takes a float "
        "(declare the input `type: float`)",
        "wf.yaml:15: steps[1].with.steps: ${inputs.f} is a float input but draw's 'steps' takes an int "
        "(declare the input `type: int`)",
        "wf.yaml:18: steps[2].with.image: ${steps.cap.text} is text but paint's 'image' takes an image "
        "(a step's image is ${steps.ID.image})",
    ]  # image -> text (a path), int -> float, image -> image and data.KEY (unknown until run time) pass


def test_literal_sizes_follow_the_active_profile(fakes, tiny_config):
    text = textwrap.dedent("""
        name: x
        steps:
          - id: a
            tool: draw
            with: {prompt: hi, width: 100, height: 4096}
          - id: b
            tool: draw
            with: {prompt: hi, size: 64x60, width: 64}
          - id: c
            tool: draw
            with: {prompt: hi, width: 512, height: 2048}
        """).lstrip("\n")
    _, found = check_text(text, "wf.yaml", fakes, tiny_config)
    assert [str(p) for p in found] == [
        "wf.yaml:5: steps[0].with.width: width must be a multiple of 8, got 100",
        "wf.yaml:5: steps[0].with.height: height 4096 is above the configured maximum 2048 "
        "(profiles.tiny.diffusion.max_height in the config)",
        "wf.yaml:8: steps[1].with.size: height must be a multiple of 8, got 60",
    ]
    assert check_text(text, "wf.yaml", fakes)[1] == []  # no config: no profile to check against


def test_message_details_braces_duplicate_ids_and_unknown_line(fakes, tiny_config, tmp_path):
    found = problems("""
        name: x
        steps:
          - id: a
            tool: echo
            with: {text: "${{ steps.a.text }}"}
          - id: a
            tool: echo
            with: {text: hi}
          - id: c
            tool: echo
            with: {text: "${steps.b.text}"}
        """, fakes)
    assert found[0] == ("wf.yaml:5: steps[0].with.text: not a reference: '${{ steps.a.text }}' "
                        "(write ${inputs.NAME}, not ${{ inputs.NAME }})")
    assert found[2] == "wf.yaml:11: steps[2].with.text: ${steps.b.text}: unknown step 'b' (steps: a)"
    big = tmp_path / "big.yaml"
    big.write_text("name: x\n#" + "x" * 1_100_000 + "\n")
    with pytest.raises(WorkflowError) as err:
        load_workflow(str(big), tiny_config, fakes)
    assert str(err.value) == f"{big}: (top): file is larger than 1000 kB"
