"""Generator access for PIE: synthesis from W+ and random W+ latents, through the one generator interface
(:class:`facecontrol.models.stylegan_interface.StyleGAN2Generator`)."""

from __future__ import annotations

import torch

from ...models.stylegan_interface import StyleGAN2Generator


def synthesize(generator: StyleGAN2Generator, w_plus: torch.Tensor) -> torch.Tensor:
    """W+ (B,num_ws,w_dim) -> image (B,3,R,R) in about [-1,1], stored (const) noise."""
    return generator.synthesis(w_plus, noise_mode="const")


def sample_w_plus(
    generator: StyleGAN2Generator, count: int, rng: torch.Generator, truncation: float = 0.7
) -> torch.Tensor:
    """Random W+ latents (the v of the energies), truncated towards w_avg for plausible faces."""
    return generator.sample_ws(count, rng, truncation)


def sample_mixed_w_plus(
    generator: StyleGAN2Generator, count: int, rng: torch.Generator, truncation: float = 0.7, max_sources: int = 5
) -> torch.Tensor:
    """Style-mixed W+ (StyleRig's training latents): each sample joins up to ``max_sources`` separately sampled
    w, in contiguous runs of layers split at random crossover points (1 source: one w on every layer)."""
    num_ws = generator.num_ws
    sources = sample_w_plus(generator, count * max_sources, rng, truncation).view(count, max_sources, num_ws, -1)
    if max_sources <= 1:
        return sources[:, 0]
    counts = torch.randint(1, max_sources + 1, (count,), generator=rng)
    index = torch.zeros(count, num_ws, dtype=torch.long)
    for item in range(count):
        cuts = torch.randperm(num_ws - 1, generator=rng)[: int(counts[item]) - 1] + 1
        layers = torch.arange(num_ws)
        index[item] = (layers[:, None] >= cuts[None]).sum(1)
    index = index.to(sources.device)
    return torch.gather(sources, 1, index[:, None, :, None].expand(-1, 1, -1, sources.shape[-1])).squeeze(1)
