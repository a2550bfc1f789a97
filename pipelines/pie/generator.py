"""Generator access for PIE: synthesis from W+ and random W+ latents, for either StyleGAN2 layout."""
from __future__ import annotations

import torch
from torch import nn


def is_nvlabs(generator: nn.Module) -> bool:
    return hasattr(generator, "c_dim")


def synthesize(generator: nn.Module, w_plus: torch.Tensor) -> torch.Tensor:
    """W+ (B,num_ws,w_dim) -> image (B,3,R,R) in about [-1,1], stored (const) noise."""
    return generator.synthesis(w_plus, noise_mode="const")


def sample_w_plus(generator: nn.Module, count: int, rng: torch.Generator, truncation: float = 0.7) -> torch.Tensor:
    """Random W+ latents (the v of the energies), truncated towards w_avg for plausible faces."""
    device = generator.w_avg.device
    z = torch.randn(count, generator.z_dim, generator=rng).to(device)
    if is_nvlabs(generator):
        return generator.mapping(z, None, truncation_psi=truncation)
    return generator.mapping(z, truncation_psi=truncation)
