"""Paste edited crops back into their original frames through a feathered mask."""

from __future__ import annotations

import cv2
import numpy as np

from .types import FaceCrop


def feathered_mask(mask: np.ndarray, feather: int) -> np.ndarray:
    """Blur a (S,S) [0,1] mask so its edge falls off over about `feather` pixels, staying 0 at the crop
    border (so no crop edge is ever visible after pasting)."""
    mask = mask.astype(np.float32)
    if feather <= 0:
        return mask
    border = max(1, feather // 2)
    mask = mask.copy()
    mask[:border] = mask[-border:] = 0
    mask[:, :border] = mask[:, -border:] = 0
    k = 2 * feather + 1
    return cv2.GaussianBlur(mask, (k, k), feather / 2.0, borderType=cv2.BORDER_CONSTANT).clip(0, 1)


def crop_area_mask(size: int, margin: float = 0.0) -> np.ndarray:
    """The whole crop (optionally shrunk by a margin fraction) as a mask."""
    mask = np.zeros((size, size), np.float32)
    m = int(round(margin * size))
    mask[m : size - m, m : size - m] = 1.0
    return mask


def paste_back(
    frames: np.ndarray, crops: np.ndarray, crop: FaceCrop, masks: np.ndarray, feather: int = 16
) -> tuple[np.ndarray, np.ndarray]:
    """Inverse-warp (N,S,S,C) crops into (N,H,W,C) float frames through (N,S,S) masks.

    Returns the composited frames and the frame-space masks used (N,H,W). A single crop or mask
    broadcasts over frames.
    """
    n, h, w = frames.shape[:3]
    out = np.empty_like(frames, dtype=np.float32)
    used = np.empty((n, h, w), np.float32)
    for i in range(n):
        crop_img = crops[min(i, len(crops) - 1)].astype(np.float32)
        soft = feathered_mask(masks[min(i, len(masks) - 1)], feather)
        inv = crop.inverse[min(i, len(crop) - 1)]
        # cubic: a bilinear warp back would blur what the crop warp already softened once
        warped = cv2.warpAffine(crop_img, inv, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
        alpha = cv2.warpAffine(soft, inv, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        if warped.ndim == 2:
            warped = warped[..., None]
        out[i] = frames[i] * (1 - alpha[..., None]) + warped * alpha[..., None]
        used[i] = alpha
    return out, used
