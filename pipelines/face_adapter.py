"""Face-Adapter's plain-PyTorch steps around the sampler: identity tokens, attribute tokens, the blend.

Sampling itself stays ComfyUI's (nodes/face_adapter_nodes.py). The steps follow the authors' infer.py:
identity tokens from iresnet100's layer4 map of the 256 ArcFace crop at 128 px through ID2Token; attribute
tokens from the fine-tuned CLIP ViT-H vision tower (last hidden state, before post-layernorm) of the 512
crop through Image2Token; the generated crop blended with the base crop through the adapting-area mask
feathered by a 17 max-pool then a 17 average-pool.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

# CLIPImageProcessor() defaults (OpenAI CLIP normalisation, short side 224, centre crop 224, PIL bicubic).
CLIP_SIZE = 224
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

BLEND_KERNEL = 17
BLEND_PAD = 16


def clip_pixel_values(frames: np.ndarray) -> torch.Tensor:
    """uint8 RGB (B,H,W,3) -> (B,3,224,224) as CLIPImageProcessor() makes them from PIL images."""
    return torch.stack([_clip_one(frame) for frame in frames])


def _clip_one(frame: np.ndarray) -> torch.Tensor:
    image = Image.fromarray(frame)
    width, height = image.size
    scale = CLIP_SIZE / min(width, height)
    resized = (max(CLIP_SIZE, int(width * scale)), max(CLIP_SIZE, int(height * scale)))
    image = image.resize(resized, resample=Image.BICUBIC)
    left = (image.size[0] - CLIP_SIZE) // 2
    top = (image.size[1] - CLIP_SIZE) // 2
    image = image.crop((left, top, left + CLIP_SIZE, top + CLIP_SIZE))
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean = torch.tensor(CLIP_MEAN).view(3, 1, 1)
    std = torch.tensor(CLIP_STD).view(3, 1, 1)
    return (pixels - mean) / std


@torch.no_grad()
def identity_tokens(iresnet: torch.nn.Module, id2token: torch.nn.Module, crops256: torch.Tensor) -> torch.Tensor:
    """256 ArcFace-template crops in [-1,1] (B,3,256,256) -> UNet context (B,77,768)."""
    param = next(id2token.parameters())
    features = iresnet.spatial_tokens(crops256.to(param.device, next(iresnet.parameters()).dtype))
    return id2token(features.to(param.dtype)).float()


@torch.no_grad()
def attribute_tokens(
    vision_model: torch.nn.Module, image2token: torch.nn.Module, pixel_values: torch.Tensor
) -> torch.Tensor:
    """CLIP pixel values (B,3,224,224) -> ControlNet context (B,77,768).

    `vision_model` returns CLIP's last hidden state, before post_layernorm (models.face_adapter_vision).
    """
    param = next(vision_model.parameters())
    hidden = vision_model(pixel_values.to(param.device, param.dtype))
    mapper_param = next(image2token.parameters())
    return image2token(hidden.to(mapper_param.device, mapper_param.dtype)).float()


def feather_mask(mask: torch.Tensor) -> torch.Tensor:
    """The authors' blend weight: zero-pad 16, max-pool 17 (grow 8 px), average-pool 17 (ramp), crop back.

    mask (B,H,W) or (B,1,H,W) in [0,1] -> the same shape.
    """
    squeeze = mask.dim() == 3
    m = mask[:, None] if squeeze else mask
    padded = F.pad(m.float(), (BLEND_PAD,) * 4, mode="constant", value=0.0)
    half = BLEND_KERNEL // 2
    grown = F.max_pool2d(padded, kernel_size=BLEND_KERNEL, stride=1, padding=half)
    soft = F.avg_pool2d(grown, kernel_size=BLEND_KERNEL, stride=1, padding=half)
    soft = soft[..., BLEND_PAD:-BLEND_PAD, BLEND_PAD:-BLEND_PAD]
    return soft[:, 0] if squeeze else soft


def blend(generated: torch.Tensor, base: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """generated*w + base*(1-w) on IMAGE tensors (B,H,W,3) with w (B,H,W)."""
    w = weight[..., None].to(generated.dtype)
    return generated * w + base * (1.0 - w)


def flicker(frames: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Mean absolute frame-to-frame difference (0..255 scale) of an IMAGE batch, inside `mask` when given."""
    if frames.shape[0] < 2:
        return 0.0
    diff = (frames[1:] - frames[:-1]).abs().mean(dim=-1) * 255.0
    if mask is None:
        return float(diff.mean())
    weight = (mask[1:] * mask[:-1]).float()
    return float((diff * weight).sum() / weight.sum().clamp_min(1.0))
