"""Face-Adapter's adapting-area masks and spatial control, in 512-crop pixels.

- reenactment: the released Adapting Area Predictor (see models/seg_unet.py) on the source crop and the
  landmark drawing;
- swapping: BiSeNet face parsing of the target crop with Face-Adapter's class sets and dilations;
- the geometric fallback when neither network is present: the union of the source's and the driver's
  face regions from landmarks (convex hull with a forehead band), dilated.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

# zllrunning BiSeNet / CelebAMask-HQ labels
SKIN, GLASSES, EARRING, NECKLACE, HAT = 1, 6, 9, 15, 18
FACE_CLASSES = frozenset({1, 2, 3, 4, 5, 10, 11, 12, 13})  # {1..6, 10..13} - {6}
FACE_WITH_EARS_CLASSES = frozenset(set(range(1, 14)) - {EARRING, GLASSES})  # {1..13} - {9} - {6}
OCCLUSION_CLASSES = frozenset({GLASSES, EARRING, NECKLACE, HAT})
FACE_DILATION = 65
FINAL_DILATION = 5

NOSE_TIP, BROWS = 30, slice(17, 27)


def dilate(mask: torch.Tensor, kernel: int) -> torch.Tensor:
    """Max-pool dilation of (B,H,W) masks with an odd square kernel, same size out."""
    if kernel <= 1:
        return mask
    return F.max_pool2d(mask[:, None], kernel, stride=1, padding=kernel // 2)[:, 0]


def swap_mask_from_parsing(labels: torch.Tensor) -> torch.Tensor:
    """(B,H,W) BiSeNet labels -> (B,H,W) {0,1} Face-Adapter swap mask.

    ``max(face_with_ears, dilate65(face)) * (1 - occlusions)``, then dilated by 5.
    """
    face = _isin(labels, FACE_CLASSES)
    with_ears = _isin(labels, FACE_WITH_EARS_CLASSES)
    occlusion = _isin(labels, OCCLUSION_CLASSES)
    mask = torch.maximum(with_ears, dilate(face, FACE_DILATION)) * (1 - occlusion)
    return dilate(mask, FINAL_DILATION)


def swap_mask_from_label_image(values: torch.Tensor) -> torch.Tensor:
    """(B,H,W) values in [0,1] of a precomputed label PNG in the authors' coding (``tgt/mask/<name>.png``: label
    = round(pixel * 20 / 255)) -> (B,H,W) {0,1} swap mask with their class sets for that coding: face
    1 < l < 12, face with ears 1 < l < 14, occlusions 14 < l < 20, then the same dilations as for BiSeNet."""
    labels = torch.round(torch.round(values.float() * 255.0) * (20.0 / 255.0))
    face = ((labels > 1) & (labels < 12)).float()
    with_ears = ((labels > 1) & (labels < 14)).float()
    occlusion = ((labels > 14) & (labels < 20)).float()
    mask = torch.maximum(with_ears, dilate(face, FACE_DILATION)) * (1 - occlusion)
    return dilate(mask, FINAL_DILATION)


def _isin(labels: torch.Tensor, classes: frozenset[int]) -> torch.Tensor:
    values = torch.tensor(sorted(classes), device=labels.device)
    return torch.isin(labels, values).float()


def face_region_polygon(lm68: np.ndarray, forehead: float = 0.6) -> np.ndarray:
    """Convex hull of the 68 points plus the brows raised by ``forehead`` x their height above the nose tip."""
    lm68 = np.asarray(lm68, np.float64)
    brows = lm68[BROWS]
    raised = brows + forehead * (brows - lm68[NOSE_TIP])
    points = np.concatenate([lm68, raised]).astype(np.float32)
    return cv2.convexHull(points)[:, 0]


def geometric_mask(landmark_sets: list[np.ndarray], size: int, dilation: int) -> np.ndarray:
    """(B,size,size) float {0,1}: union of the face regions of each (B,68,2) landmark set, dilated."""
    frames = len(landmark_sets[0])
    masks = np.zeros((frames, size, size), np.float32)
    for points in landmark_sets:
        if len(points) != frames:
            raise ValueError(f"landmark sets differ in frame count: {len(points)} and {frames}")
        for i, lm in enumerate(points):
            polygon = np.round(face_region_polygon(lm)).astype(np.int32)
            cv2.fillConvexPoly(masks[i], polygon, 1.0)
    kernel = dilation if dilation % 2 else dilation + 1
    return dilate(torch.from_numpy(masks), kernel).numpy()


def spatial_control(landmark_image: torch.Tensor, base_image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``landmarks * M + base * (1 - M)`` for (B,H,W,C) images and a (B,H,W) mask (any value range)."""
    m = mask[..., None].to(base_image)
    return landmark_image.to(base_image) * m + base_image * (1 - m)
