"""DVA text-driven edit: optimise the identity code so that a few-step DDIM reconstruction of the first
frame moves along a CLIP text direction (the authors' editing_CLIP.py strategy).

1. Frame 0 is inverted with `steps` DDIM steps (5 in the paper: timesteps 0, 200, ..., 800) using its own
   identity code z0 and landmark code.
2. edit_code starts at z0; each iteration generates frame 0 from that x_T with
   z_face = Linear(cat(edit_code, z_lnd0)) through the same few steps, with gradients, and takes an Adam
   step (lr 0.002) on
       clip_weight * -log((2 - d) / 2)            d = 1 - cos(image direction, text direction)
     + id_weight   * (1 - cos(IR-SE50(generated), z0))
     + l1_weight   * mean |generated - frame0| inside the face mask
   where the image direction is CLIP(generated) - CLIP(frame0) and the text direction is
   CLIP(target text) - CLIP(source text) (StyleGAN-NADA's directional loss, ViT-B/16).
3. The video's code becomes l2norm(z_avg + scale * (edit_code - z0)).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from .dva import DDIMSchedule, DVALatent, _denoise, _move_to_level, ddim_invert, l2_normalize

__all__ = ["ClipEditSettings", "clip_direction_edit", "TextDirection"]

logger = logging.getLogger(__name__)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass
class ClipEditSettings:
    target_text: str
    source_text: str = "face"
    iterations: int = 2000
    lr: float = 0.002
    steps: int = 5
    scale: float = 0.5
    clip_weight: float = 3.0
    id_weight: float = 1.0
    l1_weight: float = 5.0


class TextDirection:
    """CLIP image and text embeddings for the directional loss."""

    def __init__(self, clip_model, source_text: str, target_text: str):
        import open_clip

        self.model = clip_model
        device = next(clip_model.parameters()).device
        with torch.no_grad():
            tokens = open_clip.tokenize([source_text, target_text]).to(device)
            text = F.normalize(clip_model.encode_text(tokens).float(), dim=-1)
        self.text_direction = F.normalize(text[1:] - text[:1], dim=-1)
        size = clip_model.visual.image_size
        self.size = tuple(size) if isinstance(size, (tuple, list)) else (size, size)

    def image_embedding(self, x: torch.Tensor) -> torch.Tensor:
        """x (B,3,H,W) in [-1,1] -> unit CLIP image embeddings."""
        x = F.interpolate((x + 1) / 2, self.size, mode="bicubic", align_corners=False)
        mean = torch.tensor(CLIP_MEAN, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(CLIP_STD, device=x.device).view(1, 3, 1, 1)
        return F.normalize(self.model.encode_image((x - mean) / std).float(), dim=-1)

    def loss(self, generated: torch.Tensor, source_embedding: torch.Tensor) -> torch.Tensor:
        direction = F.normalize(self.image_embedding(generated) - source_embedding, dim=-1)
        distance = 1 - (direction * self.text_direction).sum(-1)
        return -torch.log((2 - distance) / 2).mean()


def make_autograd_ready(module: torch.nn.Module) -> None:
    """Freeze the parameters and replace inference-mode tensors by ordinary copies (ComfyUI runs nodes
    under torch.inference_mode, whose tensors autograd refuses to save)."""
    for sub in module.modules():
        for name, param in list(sub._parameters.items()):
            if param is not None and (param.is_inference() or param.requires_grad):
                sub._parameters[name] = torch.nn.Parameter(param.detach().clone() if param.is_inference() else param.detach(),
                                                           requires_grad=False)
        for name, buffer in list(sub._buffers.items()):
            if buffer is not None and buffer.is_inference():
                sub._buffers[name] = buffer.clone()


def _generate_with_grad(unet, x_T, z_face, schedule: DDIMSchedule) -> torch.Tensor:
    x = x_T
    abar, abar_prev = schedule.alphas_cumprod, schedule.alphas_cumprod_prev
    for i in reversed(range(len(schedule))):
        x0, eps = _denoise(unet, x, schedule.timestep_map[i], z_face, abar[i], True)
        x = _move_to_level(x0, eps, abar_prev[i])
    return x


def clip_direction_edit(
    unet,
    encoder,
    clip_model,
    frame0: torch.Tensor,
    latent: DVALatent,
    settings: ClipEditSettings,
    device: torch.device | str = "cpu",
    callback: Callable[[int, int], None] | None = None,
) -> tuple[torch.Tensor, list[float]]:
    """Edited video identity code (1,512) and the loss per iteration.

    frame0: (1,3,256,256) aligned crop in [-1,1]; latent: the video's encoding (z_id, z_id_avg, z_lnd, masks).
    """
    device = torch.device(device)
    # clones: tensors made under ComfyUI's inference mode cannot take part in autograd
    frame0 = frame0.to(device).clone()
    schedule = DDIMSchedule.from_steps(settings.steps)
    z0 = latent.z_id[:1].to(device).clone()
    z_lnd0 = latent.z_lnd[:1].to(device).clone()
    mask0 = latent.masks[:1].to(device).clone()
    with torch.no_grad():
        x_T = ddim_invert(unet, frame0, encoder.face_code(z0, z_lnd0), schedule)
    direction = TextDirection(clip_model, settings.source_text, settings.target_text)
    with torch.no_grad():
        source_embedding = direction.image_embedding(frame0)
    edit_code = z0.clone().requires_grad_(True)
    optimiser = torch.optim.Adam([edit_code], lr=settings.lr)
    for module in (unet, encoder, clip_model):
        make_autograd_ready(module)
    losses = []
    for it in range(settings.iterations):
        generated = _generate_with_grad(unet, x_T, encoder.face_code(edit_code, z_lnd0), schedule)
        loss = settings.clip_weight * direction.loss(generated, source_embedding)
        loss = loss + settings.id_weight * (1 - F.cosine_similarity(encoder.id_forward(generated), z0).mean())
        loss = loss + settings.l1_weight * ((generated - frame0).abs() * mask0).mean()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        losses.append(float(loss))
        if callback is not None:
            callback(it + 1, settings.iterations)
    logger.info("CLIP edit '%s': loss %.4f -> %.4f over %d iterations", settings.target_text,
                losses[0] if losses else float("nan"), losses[-1] if losses else float("nan"), settings.iterations)
    delta = edit_code.detach() - z0
    return l2_normalize(latent.z_id_avg.to(device) + settings.scale * delta).cpu(), losses
