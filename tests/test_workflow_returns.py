"""What a tool returns: declared by the tool (`returns_images`, `data_keys`), checked by
`validate` before any model loads, and at run time an output that cannot be resolved fails the
run by name (never an `ok` run with an output silently dropped)."""

import json
import textwrap

from PIL import Image

from visionloop.tools import RUN_DATA_KEYS, ToolCall
from visionloop.workflows import check_text, load_workflow, run_workflow


def problems(text, registry):
    return [str(p) for p in check_text(textwrap.dedent(text).lstrip("\n"), "wf.yaml", registry)[1]]


# --- the built-in tools' declarations match what they really return --------------------------

BUILT_IN = {"see": False, "caption": False, "read-text": False, "draw": True, "edit": True, "restyle": True}


def test_every_built_in_tool_declares_what_it_returns(registry):
    for name, images in BUILT_IN.items():
        tool = registry.tool(name)
        assert tool.returns_images is images, name
        assert tool.data_keys is not None and "model" in tool.data_keys, name
        assert tool.describe()["returns"] == {"images": images, "data": sorted({*tool.data_keys, *RUN_DATA_KEYS})}


def test_declared_data_keys_cover_what_the_tools_really_set(loop, registry, example_image, tmp_path):
    """Every code path that adds keys: llava and OCR engines, draw, edit by box and by mask,
    restyle with a prompt and with LLaVA's description. A key a tool sets but does not
    declare would make `validate` refuse a reference that works."""
    from PIL import ImageDraw

    mask = tmp_path / "mask.png"  # with transparency: read by its alpha, with a note
    picture = Image.new("RGBA", Image.open(example_image).size, (0, 0, 0, 0))
    ImageDraw.Draw(picture).rectangle((8, 8, 40, 40), fill=(255, 255, 255, 255))
    picture.save(mask)
    image = str(example_image)
    calls = [("see", {"image": [image], "question": "what is this?"}),
             ("caption", {"image": [image]}),
             ("read-text", {"image": [image]}),
             ("read-text", {"image": [image], "engine": "llava", "lang": "de"}),
             ("draw", {"prompt": "a lighthouse", "seed": 1, "steps": 2}),
             ("edit", {"image": image, "prompt": "a boat", "box": "8,8,40,40", "seed": 2, "steps": 2}),
             ("edit", {"image": image, "prompt": "a boat", "mask": str(mask), "seed": 2, "steps": 2}),
             ("restyle", {"image": image, "prompt": "a lighthouse", "style": "ink", "seed": 3, "steps": 2}),
             ("restyle", {"image": image, "style": "ink", "seed": 3, "steps": 2})]
    for name, args in calls:
        (result,) = loop.call(ToolCall(name, args))
        assert result.ok, (name, result.error)
        tool = registry.tool(name)
        undeclared = set(result.data) - {*tool.data_keys, *RUN_DATA_KEYS}
        assert not undeclared, f"{name} sets data keys it does not declare: {sorted(undeclared)}"
        assert bool(result.images) is tool.returns_images, name


# --- validate -------------------------------------------------------------------------------

def test_validate_refuses_what_a_step_never_returns(registry):
    found = problems("""
        name: x
        inputs:
          photo: {type: image}
        steps:
          - id: describe
            tool: caption
            with: {image: "${inputs.photo}"}
          - id: redraw
            tool: restyle
            with: {image: "${steps.describe.image}", style: "${steps.describe.data.modle}"}
        outputs:
          picture: "${steps.describe.images}"
          seed: "${steps.redraw.data.sead}"
        files:
          notes.txt: "${steps.describe.data.zzz}"
        """, registry)
    assert found == [
        "wf.yaml:10: steps[1].with.image: ${steps.describe.image}: step 'describe' runs caption, which returns "
        "no image (its result is ${steps.describe.text} and ${steps.describe.data.KEY})",
        "wf.yaml:10: steps[1].with.style: ${steps.describe.data.modle}: caption never sets data key 'modle' "
        "(did you mean 'model'?) (it sets: " + ", ".join(sorted({*registry.tool("caption").data_keys, "seconds",
                                                                  "results"})) + ")",
        "wf.yaml:12: outputs.picture: ${steps.describe.images}: step 'describe' runs caption, which returns no image "
        "(its result is ${steps.describe.text} and ${steps.describe.data.KEY})",
        "wf.yaml:13: outputs.seed: ${steps.redraw.data.sead}: restyle never sets data key 'sead' "
        "(did you mean 'seed'?) (it sets: " + ", ".join(sorted({*registry.tool("restyle").data_keys, "seconds"}))
        + ")",
        "wf.yaml:15: files.notes.txt: ${steps.describe.data.zzz}: caption never sets data key 'zzz' (it sets: "
        + ", ".join(sorted({*registry.tool("caption").data_keys, "seconds", "results"})) + ")",
    ]


def test_validate_takes_what_a_step_may_return(fakes):
    assert problems("""
        name: x
        inputs:
          photo: {type: image}
        steps:
          - id: p
            tool: paint
            with: {prompt: hi}
          - id: l
            tool: look
            with: {image: "${steps.p.images}"}
          - id: e
            tool: echo
            with: {text: "${steps.l.data.results} ${steps.l.data.width} ${steps.p.data.seconds}"}
        outputs:
          picture: "${steps.p.image}"
          seed: "${steps.p.data.seed}"
          anything: "${steps.e.data.whatever} ${steps.e.image}"
        """, fakes) == []  # look runs once per image (data.results); echo declares nothing: run time decides


# --- run time ---------------------------------------------------------------------------------

def test_an_output_that_cannot_be_resolved_fails_the_run_by_name(fakes, tiny_config, ctx, tmp_path):
    path = tmp_path / "wf.yaml"
    path.write_text(textwrap.dedent("""
        name: drops
        steps:
          - id: a
            tool: echo
            with: {text: hello}
        outputs:
          text: "${steps.a.text}"
          picture: "${steps.a.image}"
          size: "${steps.a.data.size}"
        files:
          notes.txt: "${steps.a.text}"
        """).lstrip("\n"))
    wf = load_workflow(str(path), tiny_config, fakes)  # echo declares nothing: valid, known only at run time
    out = run_workflow(wf, {}, ctx, fakes, tmp_path / "runs")
    assert out.status == "failed" and out.failed_step is None
    assert out.error == ("outputs.picture: ${steps.a.image}: step 'a' produced no image; "
                         "outputs.size: ${steps.a.data.size}: step 'a' has no data key 'size' (it has: length, "
                         "seconds, words)")
    manifest = json.loads(out.manifest.read_text())
    assert manifest["status"] == "failed" and manifest["error"] == out.error
    assert [s["status"] for s in manifest["steps"]] == ["ok"]
    # nothing else is lost: what resolved is kept, the sidecar file is written
    assert out.outputs == {"text": "hello"} == json.loads((out.run_dir / "outputs.json").read_text())
    assert (out.run_dir / "notes.txt").read_text() == "hello\n"


def test_cli_says_which_output_failed(cli, tmp_path, example_image):
    path = tmp_path / "wf.yaml"
    path.write_text("name: drops\ninputs:\n  photo: {type: image}\nsteps:\n  - id: a\n    tool: caption\n"
                    "    with: {image: \"${inputs.photo}\"}\noutputs:\n  seed: \"${steps.a.data.seed}\"\n")
    assert cli("validate", path).code == 0  # caption sets a seed when one is given: valid
    result = cli("run", path, "--input", f"photo={example_image}", "--out", tmp_path / "runs")
    assert result.code == 1 and "Traceback" not in result.err
    assert result.err.splitlines()[-1].startswith("error: workflow drops failed: outputs.seed: ${steps.a.data.seed}: "
                                 "step 'a' has no data key 'seed'")
    (run,) = (tmp_path / "runs").iterdir()
    assert json.loads((run / "manifest.json").read_text())["status"] == "failed"
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: drops\nsteps:\n  - id: a\n    tool: caption\n    with: {image: x.png}\n"
                   "outputs:\n  picture: \"${steps.a.image}\"\n")
    result = cli("validate", bad)
    assert result.code == 1
    assert result.out == (f"{bad}:7: outputs.picture: ${{steps.a.image}}: step 'a' runs caption, which returns no "
                          "image (its result is ${steps.a.text} and ${steps.a.data.KEY})\n")
