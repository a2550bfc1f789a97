"""The one temporal smoother: a Gaussian over frames, used for crops, 3DMM coefficients and any per-frame value.

It is scipy.ndimage.gaussian_filter1d's filter (kernel truncated at 4 sigma), written in torch so the same
code smooths NumPy arrays and tensors on any device. Edges: mode 'nearest' repeats the first and last frame
(the pack's default); mode 'reflect' is scipy's default (d c b a | a b c d), which DVA's preprocessing uses.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

TRUNCATE = 4.0


def gaussian_kernel(sigma: float, dtype: torch.dtype = torch.float64, device=None) -> torch.Tensor:
    radius = int(TRUNCATE * sigma + 0.5)
    offsets = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return kernel / kernel.sum()


def smooth_over_frames(values, sigma: float, mode: str = "nearest"):
    """Gaussian of ``sigma`` frames along axis 0 of a (N, ...) array or tensor; returns the same kind.
    mode: 'nearest' or 'reflect' (scipy's names for the edge extension).

    sigma <= 0 or a single frame returns the input unchanged.
    """
    if sigma <= 0 or len(values) < 2:
        return values
    if isinstance(values, np.ndarray):
        return (
            smooth_over_frames(torch.from_numpy(np.asarray(values, np.float64)), sigma, mode)
            .numpy()
            .astype(values.dtype if np.issubdtype(values.dtype, np.floating) else np.float64)
        )
    kernel = gaussian_kernel(sigma, values.dtype, values.device)
    radius = (len(kernel) - 1) // 2
    flat = values.reshape(values.shape[0], -1).T.unsqueeze(1)  # (C,1,N)
    if mode not in ("nearest", "reflect"):
        raise ValueError(f"unknown edge mode {mode!r}; choose nearest or reflect")
    padded = _pad_nearest(flat, radius) if mode == "nearest" else _pad_reflect(flat, radius)
    return F.conv1d(padded, kernel.view(1, 1, -1)).squeeze(1).T.reshape(values.shape)


def _pad_nearest(flat: torch.Tensor, radius: int) -> torch.Tensor:
    """Repeat the end frames ``radius`` times (replicate padding works for any radius, unlike reflect)."""
    left = flat[..., :1].expand(-1, -1, radius)
    right = flat[..., -1:].expand(-1, -1, radius)
    return torch.cat([left, flat, right], -1)


def _pad_reflect(flat: torch.Tensor, radius: int) -> torch.Tensor:
    """scipy's 'reflect' (half-sample symmetric) extension for any radius, also past the clip's length."""
    n = flat.shape[-1]
    index = torch.arange(-radius, n + radius, device=flat.device) % (2 * n)
    index = torch.where(index >= n, 2 * n - 1 - index, index)
    return flat[..., index]
