"""`read-text`: read the text in an image (OCR). One result per image.

The default engine (`auto`, or `ocr.engine` in the config) is RapidOCR, embedded and offline;
`tesseract` uses the installed binary; `llava` asks the vision model (shared with `see` and
`caption`). Every engine's text comes back in reading order, one line per line, and `data`
holds each line's text, box and confidence plus the engine actually used. Several images in
one call share one loaded engine (`ctx.models.ocr`).
"""

from visionloop.config import OcrSettings
from visionloop.hookspecs import hookimpl
from visionloop.models.ocr import ENGINES, check_lang  # light: the engines themselves import inside functions
from visionloop.tools import Input, Tool, ToolResult
from visionloop.toolkit.vision import DATA_KEYS, ask_llava, generation_inputs

LLAVA_PROMPT = "Read all the text in this image and write it out exactly, line by line. Write nothing else."
#: engine -> what produced the text, as a manifest should name it (with the version)
PRODUCERS = {"rapidocr": "rapidocr-onnxruntime", "tesseract": "tesseract"}
DEFAULT_LANG = OcrSettings.model_fields["lang"].default


def read_text(ctx, image, engine=None, lang=None, max_new_tokens=None, temperature=None, top_p=None, seed=None):
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
    # 3. Read, and put the pieces in reading order.
    reading = ocr.read(picture, lang)
    model = " ".join(str(part) for part in (PRODUCERS.get(ocr.name, ocr.name), ocr.revision) if part)
    data = {"model": model, "engine": ocr.name, "requested_engine": engine, "engine_version": ocr.revision, "lang": lang,
            "image": str(image), "size": list(picture.size), "lines": [line.to_json() for line in reading.lines],
            "ocr_seconds": round(reading.seconds, 4), "notes": []}
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
                *generation_inputs()],
        run=read_text,
        each="image",
        returns_images=False,
        # the llava engine's keys, and the OCR engines' (see read_text above)
        data_keys=(*DATA_KEYS, "engine", "requested_engine", "engine_version", "lang", "lines", "image", "size",
                   "ocr_seconds"),
    ))
