"""The training loop: diffusers' `train_text_to_image_lora.py` recipe without accelerate.

Frozen VAE, text encoder and UNet; a peft `LoraConfig(r, lora_alpha=r, init_lora_weights=
"gaussian")` on the UNet's attention projections (`to_q`, `to_k`, `to_v`, `to_out.0`; with
`text_encoder`, also on CLIP's `q/k/v/out_proj`); latents from the VAE times its scaling factor,
noise and timesteps from the DDPM schedule, noise-prediction MSE (or v-prediction, as the model's
scheduler says), AdamW (8-bit with bitsandbytes on CUDA when asked), gradients clipped at 1.0,
a constant learning rate. Trainable LoRA weights stay fp32 (`cast_training_params`) while the
frozen weights run in the mixed-precision dtype.

Everything random comes from one CPU `torch.Generator` (latent sampling, noise, timesteps) and
from the batch order, a pure function of (seed, step): a checkpoint that stores the weights,
the optimizer state and that generator's state resumes to exactly the weights an uninterrupted
run ends with.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

from visionloop.errors import ModelError, VisionloopError
from visionloop.models.training.data import Picture, batch_order, batch_pixels, to_unit

log = logging.getLogger(__name__)

UNET_TARGETS = ["to_k", "to_q", "to_v", "to_out.0"]
TEXT_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]
EVAL_SAMPLES = 8  # the fixed evaluation batch: (picture, noise, timestep) triples drawn once
MAX_GRAD_NORM = 1.0
ADAM = {"betas": (0.9, 0.999), "weight_decay": 1e-2, "eps": 1e-8}


@dataclass
class Precision:
    name: str  # fp32, fp16, bf16
    weights: object  # dtype of the frozen weights
    autocast: object | None  # dtype of autocast, None: off
    device_type: str


def pick_precision(name: str, device: str) -> Precision:
    """`auto`: bf16 (else fp16) on CUDA, fp32 elsewhere. bf16 on the CPU is autocast over fp32
    weights, only where the CPU has native bf16."""
    import torch

    kind = device.split(":")[0]
    if name == "auto":
        name = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if kind == "cuda" else "fp32"
    if name == "fp32":
        return Precision("fp32", torch.float32, None, kind)
    if kind == "cpu":
        if name == "fp16":
            raise VisionloopError("precision: fp16 needs a GPU; on the CPU use fp32, or bf16 where the CPU has it")
        if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            raise VisionloopError("precision: bf16 needs a CPU with native bf16 (AVX512-BF16 or AMX); use fp32")
        return Precision("bf16", torch.float32, torch.bfloat16, kind)
    dtype = torch.bfloat16 if name == "bf16" else torch.float16
    return Precision(name, dtype, dtype, kind)


class Trainer:
    """One LoRA being trained: the models, the optimizer, the generator, one `step()` at a time."""

    def __init__(self, pipe, pictures: list[Picture], *, rank: int, lr: float, batch: int, seed: int,
                 flip: bool, device: str, precision: Precision, text_encoder: bool = False,
                 gradient_checkpointing: bool = False, adam8bit: bool = False):
        import torch
        from diffusers import DDPMScheduler
        from diffusers.training_utils import cast_training_params
        from peft import LoraConfig

        self.pipe = pipe
        self.pictures, self.batch, self.seed, self.flip = pictures, batch, seed, flip
        self.device, self.precision = device, precision
        self.unet, self.vae, self.text_encoder = pipe.unet, pipe.vae, pipe.text_encoder
        self.train_text = text_encoder
        self.noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
        for module in (self.unet, self.vae, self.text_encoder):
            module.requires_grad_(False)
        # 1. LoRA layers, initialised on the CPU from the seed (the same on every device),
        #    without touching the process's own random state.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian",
                                             target_modules=UNET_TARGETS))
            if text_encoder:  # as `add_adapter` does, without transformers' own peft version floor
                from peft import inject_adapter_in_model

                config = LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=TEXT_TARGETS)
                inject_adapter_in_model(config, self.text_encoder, "default")
                self.text_encoder.peft_config = {"default": config}
                self.text_encoder._hf_peft_config_loaded = True
        # 2. Frozen weights in the mixed-precision dtype, trainable ones in fp32.
        pipe.to(device)
        if precision.weights != torch.float32:
            for module in (self.unet, self.vae, self.text_encoder):
                module.to(dtype=precision.weights)
            cast_training_params([self.unet, self.text_encoder] if text_encoder else self.unet, dtype=torch.float32)
        if gradient_checkpointing:
            self.unet.enable_gradient_checkpointing()
            if text_encoder:
                self.text_encoder.gradient_checkpointing_enable()
        self.unet.train()
        if text_encoder:
            self.text_encoder.train()
        self.modules = {"unet": self.unet, "text_encoder": self.text_encoder if text_encoder else None}
        self.params = [p for m in self.modules.values() if m is not None for p in m.parameters() if p.requires_grad]
        self.optimizer = self._optimizer(lr, adam8bit)
        self.scaler = torch.amp.GradScaler("cuda") if precision.name == "fp16" else None
        self.generator = torch.Generator("cpu").manual_seed(seed)
        # 3. Each caption's token ids; with a frozen text encoder, its output once per caption.
        tok = pipe.tokenizer
        self.input_ids = tok([p.caption for p in pictures], max_length=tok.model_max_length, padding="max_length",
                             truncation=True, return_tensors="pt").input_ids
        self.embeddings = None if text_encoder else self._encode_each(self.input_ids)
        self._eval = self._evaluation_batch()

    def _optimizer(self, lr: float, adam8bit: bool):
        import torch

        if adam8bit:
            if not self.device.startswith("cuda"):
                raise VisionloopError("--adam8bit needs a CUDA GPU (bitsandbytes)")
            try:
                import bitsandbytes as bnb
            except ImportError:
                raise VisionloopError("--adam8bit needs the bitsandbytes package: pip install bitsandbytes") from None
            return bnb.optim.AdamW8bit(self.params, lr=lr, **ADAM)
        return torch.optim.AdamW(self.params, lr=lr, **ADAM)

    def autocast(self):
        import torch

        if self.precision.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(self.precision.device_type, dtype=self.precision.autocast)

    def _encode_each(self, ids):
        """Text encoder output per caption (batch of one each, so any batch gives the same rows)."""
        import torch

        with torch.no_grad(), self.autocast():
            return torch.cat([self.text_encoder(row[None].to(self.device), return_dict=False)[0] for row in ids])

    def _hidden(self, indices: list[int]):
        if self.embeddings is not None:
            return self.embeddings[indices]
        return self.text_encoder(self.input_ids[indices].to(self.device), return_dict=False)[0]

    def _target(self, latents, noise, timesteps):
        kind = self.noise_scheduler.config.prediction_type
        if kind == "epsilon":
            return noise
        if kind == "v_prediction":
            return self.noise_scheduler.get_velocity(latents, noise, timesteps)
        raise ModelError(f"the model's scheduler predicts {kind!r}, which LoRA training does not support")

    def _latents(self, pixels, generator):
        import torch

        with torch.no_grad():
            dist = self.vae.encode(pixels.to(self.device, self.precision.weights)).latent_dist
            return dist.sample(generator=generator) * self.vae.config.scaling_factor

    def _noise(self, latents, generator):
        import torch

        count = self.noise_scheduler.config.num_train_timesteps
        noise = torch.randn(latents.shape, generator=generator).to(self.device, latents.dtype)
        timesteps = torch.randint(0, count, (latents.shape[0],), generator=generator).to(self.device).long()
        return noise, timesteps

    def step(self, index: int) -> float:
        """One optimisation step on the batch of step `index` (0-based); returns its loss."""
        import torch
        import torch.nn.functional as F

        order = batch_order(self.seed, index, self.batch, len(self.pictures), self.flip)
        pixels = torch.from_numpy(batch_pixels(self.pictures, order))
        indices = [i for i, _ in order]
        with self.autocast():
            latents = self._latents(pixels, self.generator)
            noise, timesteps = self._noise(latents, self.generator)
            noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
            target = self._target(latents, noise, timesteps)
            pred = self.unet(noisy, timesteps, self._hidden(indices), return_dict=False)[0]
            loss = F.mse_loss(pred.float(), target.float(), reduction="mean")
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.params, MAX_GRAD_NORM)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.params, MAX_GRAD_NORM)
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    # -- what a person judges the run by ---------------------------------------------------------
    def _evaluation_batch(self):
        """Fixed (latent, noise, timestep, caption) samples, drawn once from their own generator."""
        import numpy as np
        import torch

        gen = torch.Generator("cpu").manual_seed(self.seed + 7919)
        picks = [k % len(self.pictures) for k in range(EVAL_SAMPLES)]
        pixels = torch.from_numpy(np.stack([to_unit(self.pictures[i].pixels) for i in picks]))
        with self.autocast():
            latents = torch.cat([self._latents(pixels[k:k + 1], gen) for k in range(len(picks))])
        noise, timesteps = self._noise(latents, gen)
        return picks, latents, noise, timesteps

    def evaluation_loss(self) -> float:
        """The noise-prediction loss on the fixed evaluation batch (no update): falls as it learns."""
        import torch
        import torch.nn.functional as F

        picks, latents, noise, timesteps = self._eval
        with torch.no_grad(), self.autocast():
            hidden = self.embeddings[picks] if self.embeddings is not None else \
                self.text_encoder(self.input_ids[picks].to(self.device), return_dict=False)[0]
            noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
            pred = self.unet(noisy, timesteps, hidden, return_dict=False)[0]
            return float(F.mse_loss(pred.float(), self._target(latents, noise, timesteps).float()))

    def validation_image(self, prompt: str, seed: int, steps: int, guidance: float, size: int):
        """The validation prompt drawn with the LoRA as it is now (a fixed seed: comparable over time)."""
        import torch

        self.pipe.set_progress_bar_config(disable=True)
        with self.autocast():
            out = self.pipe(prompt, num_inference_steps=steps, guidance_scale=guidance, width=size, height=size,
                            generator=torch.Generator("cpu").manual_seed(seed))
        return out.images[0]
