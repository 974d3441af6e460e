"""Builds the `tiny` profile's models: deterministic, randomly initialised, a few MB.

They are built from configs on first use into the cache folder, saved with `save_pretrained`,
and then loaded back through exactly the same `from_pretrained` path that real weights take.
A file lock makes sure two processes never build the same model at once; a marker file written
last means a half-built folder (a killed process) is rebuilt rather than trusted.
Same seed, same configs, same library versions: the same weights, byte for byte.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from filelock import FileLock

from visionloop.errors import ModelError
from visionloop.models.loading import quiet_loading

#: Bump when a builder changes, so stale tiny models in users' caches are rebuilt.
TINY_VERSION = "2"

LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] != 'system' %}{{ message['role'].upper() + ': ' }}{% endif %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' ' }}{% endfor %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

_CORPUS = [
    "USER: ASSISTANT: describe the image in one sentence. what is in this picture?",
    "a photo of a cat sitting on a red chair next to a window with green plants",
    "read the text in this image and write it out exactly. the sign says open 24 hours",
    "a watercolour painting of a lighthouse on a rocky coast at sunset, blue sky, clouds",
    "0123456789 .,:;!?'\"()-/ the quick brown fox jumps over the lazy dog",
]


def _make_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    # Metaspace rather than byte-level pieces: every token decodes to printable text, so the
    # random model's nonsense is at least readable nonsense (and safe in file names).
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    alphabet = [chr(c) for c in range(33, 127)]
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>", "<s>", "</s>", "<pad>", "<image>"],
                                  initial_alphabet=alphabet, show_progress=False)
    tok.train_from_iterator(_CORPUS, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>", extra_special_tokens={"image_token": "<image>"},
                                   model_max_length=2048)


def tiny_llava_towers(tokenizer) -> dict:
    """The tiny LLaVAs' vision tower (CLIP) and language model (Llama) configs, for `LlavaConfig`
    and `LlavaNextConfig` alike."""
    from transformers import CLIPVisionConfig, LlamaConfig

    return {"vision_config": CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                              num_attention_heads=4, image_size=32, patch_size=8),
            "text_config": LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                                       num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                                       max_position_embeddings=2048, bos_token_id=tokenizer.bos_token_id,
                                       eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)}


def build_tiny_llava(target: Path) -> None:
    """A LLaVA-1.5-shaped model: CLIP vision tower, small Llama, real BPE tokenizer, processor."""
    import torch
    from transformers import CLIPImageProcessor, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    tokenizer = _make_tokenizer()
    config = LlavaConfig(
        **tiny_llava_towers(tokenizer),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default",
    )
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(config).eval()
    # The random model would stop at once if </s> came out first; damp its logit so that
    # generation produces a few tokens and tests see real decoding.
    with torch.no_grad():
        model.get_output_embeddings().weight[tokenizer.eos_token_id].mul_(0.0)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        tokenizer=tokenizer, patch_size=8, vision_feature_select_strategy="default",
        num_additional_image_tokens=1, chat_template=LLAVA_CHAT_TEMPLATE,
    )
    model.save_pretrained(target, safe_serialization=True)
    processor.save_pretrained(target)


def build_tiny_sd(target: Path) -> None:
    """A Stable-Diffusion-1.5-shaped pipeline (see `visionloop.models.tiny_sd`)."""
    from visionloop.models.tiny_sd import build_tiny_sd as build

    build(target)


def build_tiny_clipseg(target: Path) -> None:
    """A CLIPSeg-shaped segmenter (see `visionloop.models.tiny_extras`)."""
    from visionloop.models.tiny_extras import build_tiny_clipseg as build

    build(target)


def build_tiny_ip_adapter(target: Path) -> None:
    """An IP-Adapter for the tiny SD, with its image encoder (see `visionloop.models.tiny_extras`)."""
    from visionloop.models.tiny_extras import build_tiny_ip_adapter as build

    build(target)


#: name -> builder; the name is the `kind` that `ModelCache.resolve` asks for.
BUILDERS = {"llava": build_tiny_llava, "sd": build_tiny_sd, "clipseg": build_tiny_clipseg,
            "ip_adapter": build_tiny_ip_adapter}


def tiny_model_path(kind: str, cache_dir: Path) -> Path:
    """Build the tiny `kind` model under `cache_dir` if it is not there yet; return its folder."""
    if kind not in BUILDERS:
        raise KeyError(kind)
    root = Path(cache_dir) / "tiny" / f"{kind}-v{TINY_VERSION}"
    marker = root / ".complete"
    if marker.exists():
        return root
    try:
        return _build(kind, root, marker)
    except OSError as exc:  # cache_dir on a read-only or missing mount, a file in the way, a full disk
        raise ModelError(f"{root.parent}: cannot build the tiny {kind} model there: {exc.strerror or exc} "
                         "(cache_dir in the config sets this folder)") from None


def _build(kind: str, root: Path, marker: Path) -> Path:
    root.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root) + ".lock", timeout=600):
        if marker.exists():  # another process built it while we waited
            return root
        staging = root.with_name(root.name + ".building")
        shutil.rmtree(staging, ignore_errors=True)
        with quiet_loading():  # a first run prints its one result, not "Writing model shards"
            BUILDERS[kind](staging)
        shutil.rmtree(root, ignore_errors=True)
        staging.rename(root)
        marker.write_text("ok\n")
    return root
