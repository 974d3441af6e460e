"""How much our LoRA training step costs over a plain diffusers LoRA training step.

1. Overhead (tiny profile by default): our `Trainer.step` against the step of diffusers'
   `train_text_to_image_lora.py` written out plainly (VAE encode, noise, timesteps, text encoder,
   UNet, MSE, backward, clip, AdamW) on a second copy of the same model with the same LoRA
   config, the same batch and resolution, alternating (ABBA), median of per-round ratios (goal
   <= 1.05). Before timing, both first steps must give the same loss on the same batch and noise.
2. `--full-size`: seconds per step of our trainer on random full-size Stable Diffusion 1.5
   weights built from configs (UNet 860M, VAE, CLIP ViT-L text encoder), fp32 against bf16
   (autocast on a CPU with native bf16; mixed precision on a GPU).

    .venv/bin/python benchmarks/train_overhead.py [--profile tiny] [--rounds 40] [--batch 1] [--resolution 64]
    .venv/bin/python benchmarks/train_overhead.py --full-size [--resolution 512] [--rounds 3]
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from _common import alternate, parser, report, setup


def make_pictures(folder: Path, count: int = 4) -> Path:
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 255, (96, 80, 3), dtype=np.uint8)).save(folder / f"p{i}.png")
    return folder


def load_pictures(resolution: int):
    from visionloop.images.load import DEFAULT_MAX_FILE_MB, DEFAULT_MAX_PIXELS
    from visionloop.models.training.data import find_pictures, load_pictures as load

    class Limits:
        max_pixels, max_file_mb = DEFAULT_MAX_PIXELS, DEFAULT_MAX_FILE_MB

    root, files = find_pictures(make_pictures(Path(tempfile.mkdtemp(prefix="vl-train-bench-"))))
    pictures = load(root, files, resolution, Limits, print)
    for i, pic in enumerate(pictures):
        pic.caption = f"zzy, a picture number {i}"
    return pictures


class PlainStep:
    """diffusers' recipe step, as a plain script writes it (no caching, no helpers)."""

    def __init__(self, pipe, pictures, rank: int, lr: float, batch: int, seed: int, device: str):
        import torch
        from diffusers import DDPMScheduler
        from peft import LoraConfig

        self.pipe, self.pictures, self.batch, self.seed, self.device = pipe, pictures, batch, seed, device
        for m in (pipe.unet, pipe.vae, pipe.text_encoder):
            m.requires_grad_(False)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            pipe.unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian",
                                             target_modules=["to_k", "to_q", "to_v", "to_out.0"]))
        pipe.to(device)
        pipe.unet.train()
        self.params = [p for p in pipe.unet.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=lr, betas=(0.9, 0.999), weight_decay=1e-2, eps=1e-8)
        self.scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
        self.generator = torch.Generator("cpu").manual_seed(seed)

    def step(self, index: int) -> float:
        import torch
        import torch.nn.functional as F

        from visionloop.models.training.data import batch_order, batch_pixels

        order = batch_order(self.seed, index, self.batch, len(self.pictures), False)
        pixels = torch.from_numpy(batch_pixels(self.pictures, order)).to(self.device)
        tok = self.pipe.tokenizer
        ids = tok([self.pictures[i].caption for i, _ in order], max_length=tok.model_max_length,
                  padding="max_length", truncation=True, return_tensors="pt").input_ids.to(self.device)
        latents = self.pipe.vae.encode(pixels).latent_dist.sample(generator=self.generator)
        latents = latents * self.pipe.vae.config.scaling_factor
        noise = torch.randn(latents.shape, generator=self.generator).to(self.device)
        timesteps = torch.randint(0, self.scheduler.config.num_train_timesteps, (latents.shape[0],),
                                  generator=self.generator).to(self.device).long()
        noisy = self.scheduler.add_noise(latents, noise, timesteps)
        hidden = self.pipe.text_encoder(ids, return_dict=False)[0]
        pred = self.pipe.unet(noisy, timesteps, hidden, return_dict=False)[0]
        loss = F.mse_loss(pred.float(), noise.float(), reduction="mean")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.optimizer.step()
        self.optimizer.zero_grad()
        return float(loss.detach())


def load_pipe(ctx):
    from diffusers import StableDiffusionPipeline

    from visionloop.models.loading import quiet_loading

    source = ctx.models.resolve(ctx.config.active.diffusion.model, "sd")
    with quiet_loading():
        return StableDiffusionPipeline.from_pretrained(source, safety_checker=None, requires_safety_checker=False,
                                                       use_safetensors=True)


def overhead(args) -> None:
    import torch

    from visionloop.models.threads import pin
    from visionloop.models.training.loop import Trainer, pick_precision

    config, _, ctx = setup(args.config, args.profile)
    pin(config)
    if args.threads:
        torch.set_num_threads(args.threads)
    pictures = load_pictures(args.resolution)
    device = ctx.models.device
    ours = Trainer(load_pipe(ctx), pictures, rank=args.rank, lr=1e-4, batch=args.batch, seed=0, flip=False,
                   device=device, precision=pick_precision("fp32", device))
    plain = PlainStep(load_pipe(ctx), pictures, rank=args.rank, lr=1e-4, batch=args.batch, seed=0, device=device)
    a, b = ours.step(0), plain.step(0)
    assert abs(a - b) <= 1e-6 * max(1.0, abs(b)), f"first steps disagree: ours {a!r}, plain {b!r}"
    print(f"same first step: loss {a:.6f} (ours) and {b:.6f} (plain recipe)")
    counter = iter(range(1, 10**9))
    for _ in range(3):  # warm-up
        i = next(counter)
        ours.step(i), plain.step(i)
    index = {"ours": 0, "plain": 0}

    def step(which, trainer):
        def run():
            index[which] += 1
            trainer.step(index[which] + 3)
        return run

    times = alternate(args.rounds, ours=step("ours", ours), plain=step("plain", plain))
    print(f"{args.profile} profile, batch {args.batch}, {args.resolution}x{args.resolution}, rank {args.rank}, "
          f"{torch.get_num_threads()} thread(s), {args.rounds} rounds")
    report(times, "plain")


def full_size_pipe():
    """Stable Diffusion 1.5's architecture with random weights, from configs (no download)."""
    import torch
    from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from visionloop.models.tiny_sd import _write_tokenizer_files

    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8,
                                block_out_channels=(320, 640, 1280, 1280), layers_per_block=2)
    vae = AutoencoderKL(block_out_channels=[128, 256, 512, 512], latent_channels=4, layers_per_block=2,
                        down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
                        sample_size=512, scaling_factor=0.18215)
    text = CLIPTextModel(CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_attention_heads=12,
                                        num_hidden_layers=12, vocab_size=49408, max_position_embeddings=77,
                                        projection_dim=768))
    with tempfile.TemporaryDirectory() as tmp:
        vocab, merges = _write_tokenizer_files(Path(tmp))
        tok = CLIPTokenizer(str(vocab), str(merges), model_max_length=77, bos_token="<|startoftext|>",
                            eos_token="<|endoftext|>", pad_token="<|endoftext|>", unk_token="<|endoftext|>")
    sched = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
                          clip_sample=False, steps_offset=1)
    return StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tok, unet=unet, scheduler=sched,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)


def full_size(args) -> None:
    import torch

    from visionloop.models.device import resolve_device
    from visionloop.models.training.loop import Trainer, pick_precision

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    pictures = load_pictures(args.resolution)
    results = {}
    for name in ("fp32", "bf16"):
        started = time.perf_counter()
        pipe = full_size_pipe()
        built = time.perf_counter() - started
        trainer = Trainer(pipe, pictures, rank=args.rank, lr=1e-4, batch=args.batch, seed=0, flip=False,
                          device=device, precision=pick_precision(name, device),
                          gradient_checkpointing=args.gradient_checkpointing)
        trainer.step(0)  # warm-up
        series = []
        for i in range(args.rounds):
            t = time.perf_counter()
            trainer.step(i + 1)
            series.append(time.perf_counter() - t)
        results[name] = statistics.median(series)
        print(f"{name}: {results[name]:.2f} s/step (median of {args.rounds}; weights built in {built:.0f} s)")
        del trainer, pipe
    print(f"full-size SD 1.5 (random weights) on {device}, batch {args.batch}, {args.resolution}x{args.resolution}, "
          f"rank {args.rank}, {torch.get_num_threads()} thread(s): bf16/fp32 = {results['bf16'] / results['fp32']:.2f}")


def main() -> None:
    ap = parser(__doc__, rounds=40)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--resolution", type=int, default=None, help="default 64 (tiny), 512 (--full-size)")
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: the configured count)")
    ap.add_argument("--full-size", action="store_true", help="seconds per step on full-size SD 1.5, fp32 vs bf16")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--gradient-checkpointing", action="store_true")
    args = ap.parse_args()
    if args.full_size:
        args.resolution = args.resolution or 512
        if args.rounds == 40:
            args.rounds = 3
        full_size(args)
    else:
        args.resolution = args.resolution or 64
        overhead(args)


if __name__ == "__main__":
    main()
