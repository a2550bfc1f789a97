"""Face-Adapter's 70-point landmark control image (68 projected 3DMM landmarks + 2 gaze points)."""

from __future__ import annotations

import cv2
import matplotlib
import numpy as np
import torch

from .gaze import gaze_points
from .image import uint8_to_signed

CANVAS_SIZE = 256
CONTROL_SIZE = 512
NUM_POINTS = 70


def pts70(lm68: torch.Tensor, gaze: torch.Tensor) -> torch.Tensor:
    """(B,70,2) float points: the 68 landmarks followed by the left and right gaze points."""
    return torch.cat([lm68, gaze_points(gaze, lm68)], dim=1)


def rainbow_bgr_swapped(num_points: int = NUM_POINTS) -> list[tuple[int, int, int]]:
    """Per-point colours as Face-Adapter passes them to cv2.circle: rainbow RGB reversed, drawn into an RGB array."""
    rgba = matplotlib.colormaps["rainbow"](np.linspace(0, 1, num_points))
    rgb = (255 * rgba).astype(int)[:, :3]
    return [(int(b), int(g), int(r)) for r, g, b in rgb]


def _draw_points(points: np.ndarray, colors: list, canvas_size: int, radius: int) -> np.ndarray:
    canvas = np.zeros((canvas_size, canvas_size, 3), dtype=np.uint8)
    for (x, y), color in zip(points.tolist(), colors):
        cv2.circle(canvas, (int(x), int(y)), radius=radius, color=color, thickness=-1)
    return canvas


def _as_warp_matrices(warp: torch.Tensor | np.ndarray, batch: int) -> np.ndarray:
    mats = warp.detach().cpu().numpy() if isinstance(warp, torch.Tensor) else np.asarray(warp)
    mats = mats.astype(np.float64).reshape(-1, 2, 3)
    if mats.shape[0] == 1 and batch > 1:
        mats = np.repeat(mats, batch, axis=0)
    if mats.shape[0] != batch:
        raise ValueError(f"{mats.shape[0]} warp matrices for {batch} landmark sets")
    return mats


def draw_pts70(
    lm68: torch.Tensor,
    gaze: torch.Tensor,
    warp_mat_512_to_256: torch.Tensor | np.ndarray,
    dst_size: int = CONTROL_SIZE,
    canvas_size: int = CANVAS_SIZE,
    radius: int = 2,
) -> tuple[np.ndarray, torch.Tensor]:
    """Face-Adapter's ``draw_pts70_batch``.

    lm68: (B,68,2) pixels in the 256 crop; gaze: (B,4); warp_mat_512_to_256: (B,2,3) (or one) forward affine from
    the driver's 512 crop to its 256 crop. Dots are drawn on a black 256 canvas, then warped back to dst_size.
    Returns (uint8 images (B,dst,dst,3) RGB, float32 tensor (B,3,dst,dst) in [-1,1] on lm68's device).
    """
    if lm68.ndim != 3 or lm68.shape[1:] != (68, 2) or gaze.shape != (lm68.shape[0], 4):
        raise ValueError(f"expected lm68 (B,68,2) and gaze (B,4), got {tuple(lm68.shape)} and {tuple(gaze.shape)}")
    with torch.no_grad():
        points = pts70(lm68, gaze.to(lm68)).cpu().numpy().round().astype(int)  # numpy: round half to even
    mats = _as_warp_matrices(warp_mat_512_to_256, points.shape[0])
    colors = rainbow_bgr_swapped(points.shape[1])
    images = np.stack(
        [
            cv2.warpAffine(
                _draw_points(p, colors, canvas_size, radius),
                m,
                (dst_size, dst_size),
                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                borderMode=cv2.BORDER_CONSTANT,
            )
            for p, m in zip(points, mats)
        ]
    )
    return images, uint8_to_signed(images).to(lm68.device)  # ToTensor then Normalize(0.5, 0.5)
