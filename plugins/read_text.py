"""`read-text`: read the text in an image (OCR). One result per image.

The default engine (`auto`, or `ocr.engine` in the config) is RapidOCR, embedded and offline;
`tesseract` uses the installed binary; `llava` asks the vision model (shared with `see` and
`caption`). Every engine's text comes back in reading order, one line per line: paragraphs
as lines, columns one after the other, tables and receipts row by row with their cells
separated by a tab (`--table pipes`: ` | `); `--layout` forces a reading. `data` holds each
line's text, box, confidence and kind, the blocks they form, the page's orientation and the
scale used for small print, the lines left out (`--min-confidence`, `data.dropped`) and the
engine actually used, with its version. Several images in one call share one loaded engine
(`ctx.models.ocr`).
"""

from visionloop.config import OcrSettings
from visionloop.hookspecs import hookimpl
from visionloop.models.ocr import ENGINES, LAYOUTS, TABLE_SEPARATORS, check_lang  # light: engines import inside functions
from visionloop.tools import Input, Tool, ToolResult
from visionloop.toolkit.vision import DATA_KEYS, ask_llava, generation_inputs

LLAVA_PROMPT = "Read all the text in this image and write it out exactly, line by line. Write nothing else."
#: engine -> what produced the text, as a manifest should name it (with the version)
PRODUCERS = {"rapidocr": "rapidocr-onnxruntime", "tesseract": "tesseract"}
DEFAULT_LANG = OcrSettings.model_fields["lang"].default
#: lines read with less confidence are left out (and listed in data.dropped): RapidOCR's own cut,
#: below which its readings of real print are rare and of texture or noise common
DEFAULT_MIN_CONFIDENCE = 0.5


def read_text(ctx, image, engine=None, lang=None, max_new_tokens=None, temperature=None, top_p=None, seed=None,
              layout=None, table=None, min_confidence=None):
    engine = engine or ctx.config.ocr.engine
    check_lang(lang or ctx.config.ocr.lang, "lang" if lang else "ocr.lang (in the config)")
    lang = lang or ctx.config.ocr.lang
    if engine == "llava":
        result = ask_llava(ctx, "read-text", [image], LLAVA_PROMPT, max_new_tokens, temperature, top_p, seed)
        lines = [line.strip() for line in result.text.splitlines() if line.strip()]
        result.data.update(engine="llava", requested_engine=engine, lang=lang,
                           lines=[{"text": line, "box": None, "confidence": None} for line in lines],
                           notes=result.data.get("notes", []) + ([] if lang == DEFAULT_LANG else
                           [f"lang {lang} is not used by the llava engine (its prompt names no language)"]))
        return result
    # 1. Check inputs: the image loads (one-line error) before any engine does.
    picture = ctx.load_image(image)
    # 2. The shared engine (`auto` resolved to the one that runs; a missing one is a one-line error).
    ocr = ctx.models.ocr(engine)
    # 3. Read (the page turned upright, small print enlarged), and put the lines in reading order:
    # paragraphs, columns one after the other, tables row by row.
    layout = layout or "auto"
    table = table or "tabs"
    min_confidence = DEFAULT_MIN_CONFIDENCE if min_confidence is None else float(min_confidence)
    reading = ocr.read(picture, lang, layout=layout, min_confidence=min_confidence,
                       separator=TABLE_SEPARATORS[table])
    model = " ".join(str(part) for part in (PRODUCERS.get(ocr.name, ocr.name), ocr.revision) if part)
    data = {"model": model, "engine": ocr.name, "requested_engine": engine, "engine_version": ocr.revision, "lang": lang,
            "image": str(image), "size": list(picture.size), "lines": [line.to_json() for line in reading.lines],
            "blocks": [block.to_json() for block in reading.blocks], "layout": layout, "table": table,
            "orientation": reading.orientation, "scale": reading.scale, "min_confidence": min_confidence,
            "dropped": reading.dropped, "ocr_seconds": round(reading.seconds, 4), "notes": []}
    # Nothing the engine found is left out without a word.
    low = sum(1 for d in reading.dropped if d["reason"].startswith("confidence"))
    if low:
        data["notes"].append(f"{low} line{'s' * (low > 1)} below --min-confidence {min_confidence:g} left out "
                             "(listed in data.dropped with --json)")
    if len(reading.dropped) > low:
        empty = len(reading.dropped) - low
        data["notes"].append(f"{empty} detected region{'s' * (empty > 1)} with no readable text (listed in data.dropped)")
    if reading.orientation:
        data["notes"].append(f"the page is turned {reading.orientation} degrees: read after turning it back")
    # 4. A language the engine cannot use is said, not silently dropped (the CLI prints notes).
    note = ocr.lang_note(lang) if hasattr(ocr, "lang_note") else None
    if note:
        data["notes"].append(note)
    unused = [name for name, value in (("max_new_tokens", max_new_tokens), ("temperature", temperature),
                                       ("top_p", top_p), ("seed", seed)) if value is not None]
    if unused:
        data["notes"].append(f"{', '.join(unused)}: used by --engine llava only, not by {ocr.name}")
    return ToolResult(tool="read-text", text=reading.text, data=data)


@hookimpl
def register_tools(register):
    register(Tool(
        name="read-text",
        description="Read the text in an image, in reading order (one result per image).",
        inputs=[Input("image", "image", help="image file(s)", required=True, multiple=True, positional=True),
                Input("engine", "choice", None, "default: the config's ocr.engine, auto = embedded RapidOCR; "
                      "tesseract needs the tesseract-ocr package; llava asks the vision model", choices=ENGINES),
                Input("lang", "text", None, "language code, e.g. en, de, en+de (default: the config's ocr.lang); "
                      "used by tesseract; rapidocr reads English and Chinese only (a note says so)"),
                Input("layout", "choice", None, "default auto: paragraphs, columns one after the other, tables and "
                      "receipts row by row; lines = every row across the page, blocks = columns but no tables, "
                      "table = every row as cells", choices=LAYOUTS),
                Input("table", "choice", None, "what separates a table row's cells: tabs (default) or pipes (' | ')",
                      choices=tuple(TABLE_SEPARATORS)),
                Input("min_confidence", "float", None, f"leave out lines read with less confidence (0-1, default "
                      f"{DEFAULT_MIN_CONFIDENCE:g}); each is listed in data.dropped, never left out silently",
                      min=0.0, max=1.0),
                *generation_inputs()],
        run=read_text,
        each="image",
        returns_images=False,
        # the llava engine's keys, and the OCR engines' (see read_text above)
        data_keys=(*DATA_KEYS, "engine", "requested_engine", "engine_version", "lang", "lines", "image", "size",
                   "ocr_seconds", "blocks", "layout", "table", "orientation", "scale", "min_confidence", "dropped"),
    ))
