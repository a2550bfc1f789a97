"""Phi of PIE's perceptual loss: VGG-16 features up to relu4_3, from torchvision's released ``vgg16-397923af.pth``."""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import StateSource, read_state


class VGGPerceptual(nn.Module):
    """Phi: VGG-16 features after relu1_2, relu2_2, relu3_3, relu4_3 (torchvision key names ``features.*``)."""

    LAYERS = (3, 8, 15, 22)

    def __init__(self, layers: tuple[int, ...] = LAYERS) -> None:
        super().__init__()
        from torchvision.models import vgg16

        self.layers = tuple(layers)
        self.features = vgg16(weights=None).features[: self.layers[-1] + 1]
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        if images.shape[-1] > 256:
            images = F.interpolate(images, size=(256, 256), mode="area")
        x = ((images + 1) / 2 - self.mean) / self.std
        out = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in self.layers:
                out.append(x)
        return out


def load_vgg_perceptual(source: StateSource, layers: tuple[int, ...] = VGGPerceptual.LAYERS) -> VGGPerceptual:
    """From torchvision's ``vgg16-397923af.pth`` (path or state; only the convolutional ``features.*`` used here)."""
    state: Mapping = read_state(source)
    module = VGGPerceptual(layers)
    needed = [f"features.{name}" for name in module.features.state_dict()]
    missing = [key for key in needed if key not in state]
    if missing:
        raise ValueError(f"VGG-16 state lacks {missing}; expected torchvision's vgg16 weights")
    module.features.load_state_dict({key.removeprefix("features."): state[key] for key in needed})
    return module.eval().requires_grad_(False)
