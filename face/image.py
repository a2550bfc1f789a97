"""The one conversion between ComfyUI's IMAGE layout and the layouts networks take.

ComfyUI's IMAGE is (B,H,W,3) float in [0,1]; networks take (B,3,H,W) in [-1,1] ("signed") or in [0,1]
("unit"); OpenCV and mediapipe take (B,H,W,3) uint8. Every module converts through these functions.
"""

from __future__ import annotations

import numpy as np
import torch


def image_to_unit(
    image: torch.Tensor, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """(B,H,W,3) [0,1] -> (B,3,H,W) [0,1] on ``device`` (default: where the image is) in ``dtype``."""
    return image.detach().movedim(-1, 1).to(device=device if device is not None else image.device, dtype=dtype)


def image_to_signed(
    image: torch.Tensor, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """(B,H,W,3) [0,1] -> (B,3,H,W) [-1,1]."""
    return image_to_unit(image, device, dtype) * 2.0 - 1.0


def unit_to_image(x: torch.Tensor) -> torch.Tensor:
    """(B,3,H,W) [0,1] -> ComfyUI IMAGE (B,H,W,3) float32 on the CPU, clamped to [0,1]."""
    return x.detach().float().clamp(0.0, 1.0).movedim(1, -1).cpu().contiguous()


def signed_to_image(x: torch.Tensor) -> torch.Tensor:
    """(B,3,H,W) [-1,1] -> ComfyUI IMAGE (B,H,W,3) float32 on the CPU, clamped to [0,1]."""
    return unit_to_image((x.detach().float() + 1.0) / 2.0)


def image_to_uint8(image: torch.Tensor) -> np.ndarray:
    """(B,H,W,3) float [0,1] -> (B,H,W,3) uint8, rounded to nearest."""
    return (image.detach().cpu().float().clamp(0, 1).numpy() * 255.0 + 0.5).astype(np.uint8)


def uint8_to_image(frames: np.ndarray) -> torch.Tensor:
    """(B,H,W,3) uint8 -> ComfyUI IMAGE (B,H,W,3) float32 [0,1]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).float() / 255.0


def uint8_to_signed(frames: np.ndarray) -> torch.Tensor:
    """(B,H,W,3) uint8 -> (B,3,H,W) float32 [-1,1]."""
    return image_to_signed(uint8_to_image(frames))
