"""The `tiny` profile's Stable Diffusion: an SD-1.5-shaped pipeline with random weights.

UNet, VAE, CLIP text encoder + tokenizer and a PNDM scheduler configured like SD 1.5, built
deterministically (fixed seeds, fixed configs) and saved with `save_pretrained` in
safetensors, so it is loaded back through the same `from_pretrained` path as real weights.
About 8 MB; the output is noise, but the same noise for the same seed.
"""

from __future__ import annotations

import json
from pathlib import Path

#: Letters, digits and a little punctuation: enough for a byte-free CLIP BPE vocabulary.
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789.,:;!?'\"()-/&+#%*=<>@[]_"
#: A few merges so the tokenizer does real BPE work on common words in prompts.
_MERGES = ["t h", "th e</w>", "a n", "i n", "o n", "e r", "a t", "o r", "r e", "e n", "e s</w>", "in g</w>"]


def _write_tokenizer_files(folder: Path) -> tuple[Path, Path]:
    """A CLIP BPE vocabulary: each character alone and as a word end (`a</w>`), the merges'
    results and the two special tokens. CLIPTokenizer needs exactly these two files."""
    folder.mkdir(parents=True, exist_ok=True)
    tokens = ["!"]  # index 0, as in CLIP's own vocabulary
    for ch in _ALPHABET:
        for tok in (ch, ch + "</w>"):
            if tok not in tokens:
                tokens.append(tok)
    for merge in _MERGES:
        joined = merge.replace(" ", "")
        if joined not in tokens:
            tokens.append(joined)
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab_path, merges_path = folder / "vocab.json", folder / "merges.txt"
    vocab_path.write_text(json.dumps({tok: i for i, tok in enumerate(tokens)}, ensure_ascii=False))
    merges_path.write_text("#version: 0.2\n" + "\n".join(_MERGES) + "\n")
    return vocab_path, merges_path


def build_tiny_sd(target: Path) -> None:
    """Build the tiny pipeline into `target` (a fresh folder)."""
    import tempfile

    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    target = Path(target)
    # 1. Tokenizer: CLIP BPE from our own vocabulary. model_max_length=77 as in SD 1.5
    #    (without it encoding overflows).
    with tempfile.TemporaryDirectory() as tmp:
        vocab, merges = _write_tokenizer_files(Path(tmp))
        tokenizer = CLIPTokenizer(str(vocab), str(merges), model_max_length=77,
                                  bos_token="<|startoftext|>", eos_token="<|endoftext|>",
                                  pad_token="<|endoftext|>", unk_token="<|endoftext|>")
    # 2. Models, each from a fixed seed so the weights are the same on every build.
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=2, sample_size=32, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32, norm_num_groups=32,
    )
    torch.manual_seed(1)
    vae = AutoencoderKL(
        block_out_channels=[32, 64], in_channels=3, out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"], latent_channels=4, norm_num_groups=32,
        sample_size=64,
    )
    torch.manual_seed(2)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=5,
        vocab_size=1000, max_position_embeddings=77, projection_dim=32,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    ))
    # 3. SD 1.5's own scheduler settings (steps_offset=1 avoids a deprecation notice).
    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              num_train_timesteps=1000, skip_prk_steps=True, set_alpha_to_one=False,
                              steps_offset=1)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(target, safe_serialization=True)
