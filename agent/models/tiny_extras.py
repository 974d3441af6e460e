"""The `tiny` profile's guided-editing models: a CLIPSeg segmenter and an IP-Adapter with its
CLIP image encoder. Random weights from fixed seeds, saved in safetensors in the same layout
as the real ones (`CIDAS/clipseg-rd64-refined`, `h94/IP-Adapter`), so they load through the
same calls: `CLIPSegForImageSegmentation.from_pretrained`, `pipe.load_ip_adapter`,
`CLIPVisionModelWithProjection.from_pretrained`. A few hundred KB each.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

#: The tiny Stable Diffusion UNet's cross-attention shape (agent/models/tiny_sd.py): the
#: adapter's `to_k_ip`/`to_v_ip` must match it.
SD_BLOCK_OUT_CHANNELS = (32, 64)
SD_CROSS_ATTENTION_DIM = 32
#: The h94 layout: `models/ip-adapter_sd15.safetensors` and `models/image_encoder/`.
IP_SUBFOLDER = "models"
IP_WEIGHT = "ip-adapter_sd15.safetensors"
IMAGE_TOKENS = 4


def build_tiny_clipseg(target: Path) -> None:
    """A CLIPSeg-shaped segmenter: tiny CLIP text and vision towers, the FiLM decoder, the
    CLIP BPE tokenizer of the tiny Stable Diffusion and a 64x64 image processor."""
    import torch
    from transformers import (
        CLIPSegConfig,
        CLIPSegForImageSegmentation,
        CLIPSegProcessor,
        CLIPSegTextConfig,
        CLIPSegVisionConfig,
        CLIPTokenizer,
        ViTImageProcessor,
    )
    from visionloop.models.tiny_sd import _write_tokenizer_files

    with tempfile.TemporaryDirectory() as tmp:
        vocab, merges = _write_tokenizer_files(Path(tmp))
        tokenizer = CLIPTokenizer(str(vocab), str(merges), model_max_length=77,
                                  bos_token="<|startoftext|>", eos_token="<|endoftext|>",
                                  pad_token="<|endoftext|>", unk_token="<|endoftext|>")
    config = CLIPSegConfig(
        text_config=CLIPSegTextConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37,
                                      num_hidden_layers=3, num_attention_heads=4, max_position_embeddings=77,
                                      bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                                      pad_token_id=tokenizer.pad_token_id),
        vision_config=CLIPSegVisionConfig(hidden_size=32, intermediate_size=37, num_hidden_layers=3,
                                          num_attention_heads=4, image_size=64, patch_size=8),
        projection_dim=32, extract_layers=[0, 1, 2], reduce_dim=16, decoder_num_attention_heads=2,
        decoder_intermediate_size=32,
    )
    torch.manual_seed(3)
    model = CLIPSegForImageSegmentation(config).eval()
    with torch.no_grad():  # one value per 8x8 patch: regions, not pixel noise, as a real mask has
        conv = model.decoder.transposed_convolution
        # and a spread of logits wide enough that the threshold matters (a fifth of a photo at 0.4)
        conv.weight.copy_(conv.weight.mean(dim=(2, 3), keepdim=True).expand_as(conv.weight) * 10.0)
        conv.bias.zero_()
    processor = CLIPSegProcessor(
        image_processor=ViTImageProcessor(size={"height": 64, "width": 64}, do_resize=True,
                                          image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]),
        tokenizer=tokenizer)
    model.save_pretrained(target, safe_serialization=True)
    processor.save_pretrained(target)


def _cross_attention_sizes() -> list[int]:
    """The hidden size of each cross-attention processor of the tiny UNet, in
    `unet.attn_processors` order (down blocks, up blocks, mid block)."""
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel(  # the tiny SD UNet's shape (random weights are not kept)
        block_out_channels=SD_BLOCK_OUT_CHANNELS, layers_per_block=2, sample_size=32, in_channels=4,
        out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=SD_CROSS_ATTENTION_DIM,
        norm_num_groups=32)
    reversed_channels = list(reversed(SD_BLOCK_OUT_CHANNELS))
    sizes = []
    for name in unet.attn_processors:
        if not name.endswith("attn2.processor"):
            continue
        if name.startswith("mid_block"):
            sizes.append(SD_BLOCK_OUT_CHANNELS[-1])
        elif name.startswith("up_blocks"):
            sizes.append(reversed_channels[int(name.split(".")[1])])
        else:
            sizes.append(SD_BLOCK_OUT_CHANNELS[int(name.split(".")[1])])
    return sizes


def build_tiny_ip_adapter(target: Path) -> None:
    """An IP-Adapter for the tiny Stable Diffusion in the h94 layout: the adapter file
    (`image_proj.*`: an `ImageProjection` to 4 image tokens; `ip_adapter.{k}.to_k_ip/to_v_ip`
    for k = 1, 3, 5, ... over the UNet's cross-attention processors) and a tiny CLIP vision
    encoder with projection, with its image processor, in `models/image_encoder/`."""
    import torch
    from diffusers.models.embeddings import ImageProjection
    from safetensors.torch import save_file
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    folder = Path(target) / IP_SUBFOLDER
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(4)
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, projection_dim=32, num_hidden_layers=2, num_attention_heads=4, image_size=32,
        patch_size=4, intermediate_size=37)).eval()
    encoder.save_pretrained(folder / "image_encoder", safe_serialization=True)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(
        folder / "image_encoder")
    torch.manual_seed(5)
    projection = ImageProjection(cross_attention_dim=SD_CROSS_ATTENTION_DIM, image_embed_dim=32,
                                 num_image_text_embeds=IMAGE_TOKENS)
    tensors = {f"image_proj.{key.replace('image_embeds.', 'proj.')}": value.detach().clone().contiguous()
               for key, value in projection.state_dict().items()}
    generator = torch.Generator().manual_seed(6)
    for i, hidden in enumerate(_cross_attention_sizes()):
        k = 2 * i + 1
        for which in ("to_k_ip", "to_v_ip"):
            # large enough that a reference picture visibly moves the output
            tensors[f"ip_adapter.{k}.{which}.weight"] = torch.randn(hidden, SD_CROSS_ATTENTION_DIM,
                                                                     generator=generator) * 0.5
    save_file(tensors, str(folder / IP_WEIGHT))
