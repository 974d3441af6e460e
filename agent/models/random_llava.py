"""A LLaVA with random weights at real size, for benchmarks (`visionloop bench --random`,
benchmarks/full_size.py), and the measuring of any LLaVA backend: tokens per second, the first
and a follow-up question's latency, batched against single captions.

The architecture is llava-interleave-qwen-0.5b's shape as the issue names it: a CLIP ViT-L/14 at
336 px vision tower (303M parameters, 576 image tokens), a two-layer projector, and a
Qwen2-0.5B-sized language model (494M, vocabulary 151,936). `--llava-7b` in the benchmark uses
LLaVA-1.5-7B's Llama-2-7B shape instead. The tokenizer is the tiny profile's (prompts become real
token ids); the model's end-of-answer id is removed so that every run decodes exactly the tokens
asked for. Built on the meta device, filled with small random numbers, saved in bf16 and loaded
back through `from_pretrained` like real weights.
"""

from __future__ import annotations

import time
from pathlib import Path

VERSION = 1

VISION = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
              image_size=336, patch_size=14, projection_dim=768, hidden_act="quick_gelu")
QWEN_05B = dict(model_type="qwen2", hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                num_attention_heads=14, num_key_value_heads=2, vocab_size=151936, max_position_embeddings=32768,
                rope_theta=1000000.0, tie_word_embeddings=True, rms_norm_eps=1e-6)
LLAMA_7B = dict(model_type="llama", hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                num_attention_heads=32, num_key_value_heads=32, vocab_size=32064, max_position_embeddings=4096,
                rms_norm_eps=1e-5)
SHAPES = {"0.5b": QWEN_05B, "7b": LLAMA_7B}


def build_random_llava(target: Path, shape: str = "0.5b") -> None:
    import torch
    from transformers import (CLIPImageProcessor, CLIPVisionConfig, LlavaConfig, LlavaForConditionalGeneration,
                              LlavaProcessor)
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    from visionloop.models.random_sd import _fill
    from visionloop.models.tiny import LLAVA_CHAT_TEMPLATE, _make_tokenizer

    tokenizer = _make_tokenizer()
    text = dict(SHAPES[shape])
    text_config = CONFIG_MAPPING[text.pop("model_type")](**text, bos_token_id=tokenizer.bos_token_id,
                                                          eos_token_id=None, pad_token_id=tokenizer.pad_token_id)
    config = LlavaConfig(vision_config=CLIPVisionConfig(**VISION), text_config=text_config,
                         image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
                         vision_feature_select_strategy="default", vision_feature_layer=-2,
                         projector_hidden_act="gelu")
    with torch.device("meta"):
        model = LlavaForConditionalGeneration(config)
    model = _fill(model, 5).eval()
    model.generation_config.eos_token_id = None  # decode exactly max_new_tokens
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336}),
        tokenizer=tokenizer, patch_size=14, vision_feature_select_strategy="default",
        num_additional_image_tokens=1, chat_template=LLAVA_CHAT_TEMPLATE)
    model.to(torch.bfloat16).save_pretrained(target, safe_serialization=True)
    processor.save_pretrained(target)


def random_llava_path(cache_dir: Path, shape: str = "0.5b") -> Path:
    """The random LLaVA folder under `cache_dir`, built once (1.6 GB for 0.5b, 14 GB for 7b)."""
    from visionloop.models.random_sd import built_once

    return built_once(Path(cache_dir) / "random" / f"llava-{shape}-v{VERSION}",
                      lambda target: build_random_llava(target, shape))


def llava_backend(source: str, device: str, dtype: str, quantize: str, batch_cache: int = 8):
    """A fresh in-process backend of the folder `source`."""
    import torch

    from visionloop.models.llava import LlavaBackend
    from visionloop.models.loading import quiet_loading

    with quiet_loading():
        return LlavaBackend("bench", str(source), None, device, getattr(torch, dtype), offline=True,
                            quantize=quantize, feature_cache=batch_cache)


def pictures(n: int, side: int = 336):
    """`n` different deterministic pictures (colour gradients)."""
    import numpy as np
    from PIL import Image

    grid = np.linspace(0, 255, side, dtype=np.float32)
    out = []
    for i in range(n):
        rgb = np.stack([np.add.outer(grid, grid * (i + 1) % 256) / 2, np.outer(grid, grid) / 255,
                        np.full((side, side), 40.0 * i % 256)], axis=-1)
        out.append(Image.fromarray(rgb.astype("uint8")))
    return out


def decode_rate(backend, picture, tokens: int) -> dict:
    """Tokens per second of the decoding alone (after the first token), and the whole answer's seconds."""
    stamps: list[float] = []
    head = backend.model.get_output_embeddings() if not hasattr(backend.model, "lm_head") else backend.model.lm_head
    handle = head.register_forward_hook(lambda *a: stamps.append(time.perf_counter()))
    try:
        backend.features.clear()
        started = time.perf_counter()
        gen = backend.ask([picture], "Describe this image in one sentence.", max_new_tokens=tokens)
        total = time.perf_counter() - started
    finally:
        handle.remove()
    decode = stamps[-1] - stamps[0] if len(stamps) > 1 else float("nan")
    return {"tokens": gen.new_tokens, "first_token_seconds": round(stamps[0] - started, 3) if stamps else None,
            "tokens_per_second": round((len(stamps) - 1) / decode, 2) if len(stamps) > 1 else None,
            "answer_seconds": round(total, 3), "text": gen.text}


def followup(backend, picture, tokens: int) -> dict:
    """The first question about a picture against a second one about the same picture."""
    backend.features.clear()
    started = time.perf_counter()
    a = backend.ask([picture], "What is in this picture?", max_new_tokens=tokens)
    first = time.perf_counter() - started
    started = time.perf_counter()
    b = backend.ask([picture], "What colours does it have?", max_new_tokens=tokens)
    second = time.perf_counter() - started
    return {"first_seconds": round(first, 3), "followup_seconds": round(second, 3),
            "followup_vs_first": round(second / first, 3), "reused": b.extra.get("image_features") == "reused",
            "texts": [a.text, b.text]}


def batch_vs_single(backend, n: int, tokens: int) -> dict:
    """Captions of `n` pictures in one batched call against `n` single calls (greedy), with the
    answers compared first."""
    shots = pictures(n)
    prompt = backend.build_prompt("Describe this image in one sentence.", 1)
    backend.features.size = 0  # every call runs its own vision tower
    started = time.perf_counter()
    single = [backend.generate([p], prompt, max_new_tokens=tokens) for p in shots]
    single_s = time.perf_counter() - started
    started = time.perf_counter()
    many = backend.generate_many([([p], prompt) for p in shots], max_new_tokens=tokens)
    many_s = time.perf_counter() - started
    backend.features.size = 8
    return {"images": n, "single_seconds": round(single_s, 3), "batched_seconds": round(many_s, 3),
            "batch_caption_speedup": round(single_s / many_s, 3),
            "identical": [s.text for s in single] == [m.text for m in many]}


def measure_vision(config, random: bool, tokens: int):
    """`visionloop bench`'s vision rows: for the profile's model (or the random 0.5B with
    `random`), tokens per second in full precision and in int8 (CPU), each a row."""
    from visionloop.models.cache import ModelCache
    from visionloop.models.device import resolve_device

    device = resolve_device(config.device)
    spec = config.active.vision
    if spec.backend != "transformers":
        yield {"error": f"vision backend {spec.backend}: measure it on its server"}
        return
    source = random_llava_path(config.cache_path) if random else ModelCache(config).resolve(spec.model, "llava")
    settings = [("float32", "none"), ("float32", "int8")] if device.startswith("cpu") else [("float16", "none")]
    picture = pictures(1)[0]
    for dtype, quantize in settings:
        backend = llava_backend(source, device, dtype, quantize)
        decode_rate(backend, picture, 2)  # warm-up
        row = decode_rate(backend, picture, tokens)
        row.pop("text")
        yield {"source": str(source), "dtype": dtype, "quantize": quantize, **row}
        del backend
