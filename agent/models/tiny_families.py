"""Tiny random models of the other families the README promises: LLaVA-NeXT, SDXL (and its
refiner), Stable Diffusion 3 and FLUX.1. Each builder saves with `save_pretrained` into a folder
that a profile's `vision.model` / `diffusion.model` can name, so the folder is loaded back
through the same `from_pretrained` path as real weights. Fixed seeds: the same weights on every
build. The configs follow diffusers' and transformers' own tiny test models.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

#: family -> builder name in this module (the tests build every one of them)
FAMILIES = ("llava-next", "sdxl", "sdxl-refiner", "sd3", "flux")


def _clip_tokenizer():
    from transformers import CLIPTokenizer
    from visionloop.models.tiny_sd import _write_tokenizer_files

    with tempfile.TemporaryDirectory() as tmp:
        vocab, merges = _write_tokenizer_files(Path(tmp))
        return CLIPTokenizer(str(vocab), str(merges), model_max_length=77, bos_token="<|startoftext|>",
                             eos_token="<|endoftext|>", pad_token="<|endoftext|>", unk_token="<|endoftext|>")


def _clip_text(seed: int, tokenizer, projection: bool):
    """A CLIP text encoder of width 32 (with a 32-wide projection for SDXL's and SD3's pooled text)."""
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                            vocab_size=1000, max_position_embeddings=77, projection_dim=32,
                            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                            pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(config)


def _t5(seed: int):
    """A T5 encoder of width 32 and a T5 tokenizer made from a small Unigram vocabulary."""
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import T5Config, T5EncoderModel, T5TokenizerFast

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    pieces += [(ch, -3.0) for ch in "abcdefghijklmnopqrstuvwxyz0123456789.,:;!?'\"()-"]
    pieces += [("\u2581" + w, -1.0) for w in ("a", "the", "of", "in", "on", "and", "with", "cat", "boat", "red")]
    tok = Tokenizer(models.Unigram(pieces, unk_id=2))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tokenizer = T5TokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                                extra_ids=0, model_max_length=512)
    torch.manual_seed(seed)
    model = T5EncoderModel(T5Config(vocab_size=len(pieces), d_model=32, d_ff=37, d_kv=8, num_layers=2,
                                    num_heads=4, relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1))
    return model, tokenizer


def _vae(seed: int, latent_channels: int = 4, flow: bool = False):
    """A two-block VAE (scale factor 2); flow-matching families shift and scale their latents."""
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    extra = {"shift_factor": 0.0609, "scaling_factor": 1.5035} if flow else {}
    return AutoencoderKL(block_out_channels=[32, 64], in_channels=3, out_channels=3,
                         down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
                         up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"], latent_channels=latent_channels,
                         norm_num_groups=32, sample_size=64, **extra)


def _sdxl_unet(seed: int, time_inputs: int, cross: int):
    import torch
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=2, sample_size=32, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=8, transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=time_inputs * 8 + 32, cross_attention_dim=cross, norm_num_groups=1)


def _sdxl_scheduler():
    from diffusers import EulerDiscreteScheduler

    return EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                  num_train_timesteps=1000, steps_offset=1, timestep_spacing="leading")


def build_sdxl(target: Path) -> None:
    """SDXL: two CLIP encoders (32 + 32 = 64 wide cross-attention), size conditioning
    (`text_time`: 6 size numbers x 8 + the pooled projection 32 = 80)."""
    from diffusers import StableDiffusionXLPipeline

    tokenizer = _clip_tokenizer()
    pipe = StableDiffusionXLPipeline(
        vae=_vae(1), text_encoder=_clip_text(2, tokenizer, False), text_encoder_2=_clip_text(3, tokenizer, True),
        tokenizer=tokenizer, tokenizer_2=_clip_tokenizer(), unet=_sdxl_unet(0, 6, 64), scheduler=_sdxl_scheduler())
    pipe.save_pretrained(target, safe_serialization=True)


def build_sdxl_refiner(target: Path) -> None:
    """The SDXL refiner's shape: only the second encoder, aesthetic-score conditioning (5 numbers)."""
    from diffusers import StableDiffusionXLImg2ImgPipeline

    pipe = StableDiffusionXLImg2ImgPipeline(
        vae=_vae(1), text_encoder=None, text_encoder_2=_clip_text(3, _clip_tokenizer(), True), tokenizer=None,
        tokenizer_2=_clip_tokenizer(), unet=_sdxl_unet(4, 5, 32), scheduler=_sdxl_scheduler(),
        requires_aesthetics_score=True, force_zeros_for_empty_prompt=False)
    pipe.save_pretrained(target, safe_serialization=True)


def build_sd3(target: Path) -> None:
    """SD3: an MMDiT transformer on 16 latent channels (inpainting needs 16), two CLIP encoders with projection (pooled 32 + 32 = 64) and T5."""
    import torch
    from diffusers import (
        FlowMatchEulerDiscreteScheduler,
        SD3Transformer2DModel,
        StableDiffusion3Pipeline,
    )

    torch.manual_seed(0)
    transformer = SD3Transformer2DModel(sample_size=32, patch_size=1, in_channels=16, num_layers=1,
                                        attention_head_dim=8, num_attention_heads=4, caption_projection_dim=32,
                                        joint_attention_dim=32, pooled_projection_dim=64, out_channels=16)
    t5, t5_tokenizer = _t5(4)
    tokenizer = _clip_tokenizer()
    pipe = StableDiffusion3Pipeline(
        transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0), vae=_vae(1, latent_channels=16, flow=True),
        text_encoder=_clip_text(2, tokenizer, True), tokenizer=tokenizer,
        text_encoder_2=_clip_text(3, tokenizer, True), tokenizer_2=_clip_tokenizer(),
        text_encoder_3=t5, tokenizer_3=t5_tokenizer)
    pipe.save_pretrained(target, safe_serialization=True)


def build_flux(target: Path) -> None:
    """FLUX.1 (schnell-shaped, no guidance embedding): a CLIP and a T5 encoder, a one-channel VAE
    whose latents are packed 2x2 into the transformer's 4 channels."""
    import torch
    from diffusers import (
        FlowMatchEulerDiscreteScheduler,
        FluxPipeline,
        FluxTransformer2DModel,
    )

    torch.manual_seed(0)
    transformer = FluxTransformer2DModel(patch_size=1, in_channels=4, num_layers=1, num_single_layers=1,
                                         attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32,
                                         pooled_projection_dim=32, axes_dims_rope=[4, 4, 8])
    t5, t5_tokenizer = _t5(4)
    tokenizer = _clip_tokenizer()
    pipe = FluxPipeline(transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0),
                        vae=_vae(1, latent_channels=1, flow=True), text_encoder=_clip_text(2, tokenizer, False),
                        tokenizer=tokenizer, text_encoder_2=t5, tokenizer_2=t5_tokenizer)
    pipe.save_pretrained(target, safe_serialization=True)


def build_llava_next(target: Path) -> None:
    """LLaVA-NeXT (v1.6): the tiny LLaVA's CLIP tower and Llama, with anyres tiles
    (`image_grid_pinpoints`), so an image's token count depends on its size."""
    import torch
    from transformers import (
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
        LlavaNextImageProcessor,
        LlavaNextProcessor,
    )
    from visionloop.models.tiny import LLAVA_CHAT_TEMPLATE, _make_tokenizer, tiny_llava_towers

    tokenizer = _make_tokenizer()
    grid = [[32, 64], [64, 32], [64, 64]]
    config = LlavaNextConfig(
        **tiny_llava_towers(tokenizer),
        image_grid_pinpoints=grid, image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default")
    torch.manual_seed(0)
    model = LlavaNextForConditionalGeneration(config).eval()
    with torch.no_grad():  # as the tiny LLaVA: no stop at the first token
        model.get_output_embeddings().weight[tokenizer.eos_token_id].mul_(0.0)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    processor = LlavaNextProcessor(
        image_processor=LlavaNextImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
                                                image_grid_pinpoints=grid),
        tokenizer=tokenizer, patch_size=8, vision_feature_select_strategy="default", num_additional_image_tokens=1,
        chat_template=LLAVA_CHAT_TEMPLATE)
    model.save_pretrained(target, safe_serialization=True)
    processor.save_pretrained(target)


BUILDERS = {"llava-next": build_llava_next, "sdxl": build_sdxl, "sdxl-refiner": build_sdxl_refiner,
            "sd3": build_sd3, "flux": build_flux}


def build_family(name: str, target: Path) -> Path:
    """Build the tiny `name` model into `target` (created) and return it."""
    from visionloop.models.loading import quiet_loading

    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    with quiet_loading():
        BUILDERS[name](target)
    return target
