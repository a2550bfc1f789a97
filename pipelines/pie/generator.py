"""Generator access for PIE: synthesis from W+ and random W+ latents, through the one generator interface
(:class:`facecontrol.models.stylegan_interface.StyleGAN2Generator`)."""
from __future__ import annotations

import torch

from ...models.stylegan_interface import StyleGAN2Generator


def synthesize(generator: StyleGAN2Generator, w_plus: torch.Tensor) -> torch.Tensor:
    """W+ (B,num_ws,w_dim) -> image (B,3,R,R) in about [-1,1], stored (const) noise."""
    return generator.synthesis(w_plus, noise_mode="const")


def sample_w_plus(generator: StyleGAN2Generator, count: int, rng: torch.Generator, truncation: float = 0.7) -> torch.Tensor:
    """Random W+ latents (the v of the energies), truncated towards w_avg for plausible faces."""
    return generator.sample_ws(count, rng, truncation)
