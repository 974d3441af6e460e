"""Stable Diffusion 1.5 with random weights, at full size, for benchmarks (`visionloop bench
--random`, benchmarks/full_size.py): no download, the real architecture.

UNet (860M parameters), VAE (84M), CLIP ViT-L/14 text encoder (123M) and a TAESD, from configs
written here (SD 1.5's own), with SD 1.5's scheduler; the tokenizer is the tiny profile's
(a small CLIP BPE vocabulary: prompts become real token ids, the encoder reads 77 of them).
The models are built on the meta device and filled with small random numbers (a few seconds
instead of a minute of careful initialisation), then saved in bf16 safetensors under
`cache_dir` and loaded back through `from_pretrained` like real weights.
"""

from __future__ import annotations

import shutil
from pathlib import Path

VERSION = 1

UNET = dict(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
            block_out_channels=(320, 640, 1280, 1280),
            down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32)
VAE = dict(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, sample_size=512,
           block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
           up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=32, scaling_factor=0.18215)
TEXT = dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12,
            vocab_size=49408, max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768)


def _fill(module, seed: int):
    """Materialise a meta-device module on the CPU with small random weights (norms at 1/0)."""
    import torch

    module = module.to_empty(device="cpu")
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim == 1:
                p.fill_(1.0 if name.endswith("weight") and "norm" in name else 0.0)
            else:
                fan_in = p[0].numel()
                p.normal_(0.0, fan_in ** -0.5, generator=gen)
        for name, b in module.named_buffers():
            if name.endswith("position_ids"):  # CLIP's positions 0..76
                b.copy_(torch.arange(b.shape[-1]).expand_as(b))
            else:
                b.zero_()
    return module


def build_random_sd(target: Path) -> None:
    """Build the random SD 1.5 pipeline (and `taesd/`) into `target`."""
    import tempfile

    import torch
    from diffusers import (AutoencoderKL, AutoencoderTiny, PNDMScheduler, StableDiffusionPipeline,
                           UNet2DConditionModel)
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from visionloop.models.tiny_sd import _write_tokenizer_files

    target = Path(target)
    with tempfile.TemporaryDirectory() as tmp:
        vocab, merges = _write_tokenizer_files(Path(tmp))
        tokenizer = CLIPTokenizer(str(vocab), str(merges), model_max_length=77, bos_token="<|startoftext|>",
                                  eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                                  unk_token="<|endoftext|>")
    with torch.device("meta"):
        unet = UNet2DConditionModel(**UNET)
        vae = AutoencoderKL(**VAE)
        text = CLIPTextModel(CLIPTextConfig(**TEXT, bos_token_id=tokenizer.bos_token_id,
                                            eos_token_id=tokenizer.eos_token_id,
                                            pad_token_id=tokenizer.pad_token_id))
        taesd = AutoencoderTiny()
    unet, vae, text, taesd = _fill(unet, 0), _fill(vae, 1), _fill(text, 2), _fill(taesd, 3)
    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              num_train_timesteps=1000, skip_prk_steps=True, set_alpha_to_one=False,
                              steps_offset=1)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.to(torch.bfloat16).save_pretrained(target, safe_serialization=True)
    taesd.to(torch.bfloat16).save_pretrained(target / "taesd", safe_serialization=True)


def built_once(root: Path, build) -> Path:
    """`root`, built by `build(staging_folder)` the first time (under a file lock; a marker
    written last means a half-built folder from a killed process is built again)."""
    from filelock import FileLock

    marker = root / ".complete"
    if marker.exists():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root) + ".lock", timeout=3600):
        if marker.exists():
            return root
        staging = root.with_name(root.name + ".building")
        shutil.rmtree(staging, ignore_errors=True)
        build(staging)
        shutil.rmtree(root, ignore_errors=True)
        staging.rename(root)
        marker.write_text("ok\n")
    return root


def random_sd_path(cache_dir: Path) -> Path:
    """The random SD 1.5 folder under `cache_dir`, built once (about 2.2 GB on disk)."""
    return built_once(Path(cache_dir) / "random" / f"sd15-v{VERSION}", build_random_sd)
