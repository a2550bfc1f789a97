"""LPIPS v0.1 with the AlexNet backbone (Zhang et al. 2018), loading the `lpips` package's own files.

Two released files, unchanged:
- the linear heads ``weights/v0.1/alex.pth`` of the `lpips` package (keys ``lin{0..4}.model.1.weight``,
  (1,C,1,1) for C = 64, 192, 384, 256, 256; the package ships the file, saved with CUDA storages);
- torchvision's ImageNet AlexNet ``alexnet-owt-7be5be79.pth`` (keys ``features.{0,3,6,8,10}.*``; the
  ``classifier.*`` keys are not used), which the `lpips` package has torchvision download on first use.

The distance: inputs in [-1,1] are shifted and scaled per channel, the five ReLU outputs of AlexNet's
features are unit-normalised over channels, their squared differences weighted by the 1x1 heads,
averaged over pixels and summed over the five layers.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torchvision

from .checkpoint import StateSource, describe_source, load_state_strict, read_state_dict

__all__ = ["LPIPSAlex", "load_lpips_alex", "LPIPS_CHANNELS"]

LPIPS_CHANNELS = (64, 192, 384, 256, 256)
# indices into torchvision's alexnet().features after which a layer's ReLU output is taken
_RELU_ENDS = (2, 5, 8, 10, 12)
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
_EPS = 1e-10


class _LinearHead(nn.Module):
    """``model = Sequential(Dropout, Conv1x1(C->1, no bias))``: the released key is ``model.1.weight``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class LPIPSAlex(nn.Module):
    """LPIPS distance (N,) between two (N,3,H,W) batches in [-1,1]."""

    def __init__(self) -> None:
        super().__init__()
        self.features = torchvision.models.alexnet(weights=None).features
        for index, channels in enumerate(LPIPS_CHANNELS):
            self.add_module(f"lin{index}", _LinearHead(channels))
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)

    def layer_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = (x - self.shift) / self.scale
        outputs, start = [], 0
        for end in _RELU_ENDS:
            for layer in self.features[start:end]:
                h = layer(h)
            outputs.append(h)
            start = end
        return outputs

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        total = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for index, (fx, fy) in enumerate(zip(self.layer_outputs(x), self.layer_outputs(y))):
            fx = fx / (fx.pow(2).sum(1, keepdim=True).sqrt() + _EPS)
            fy = fy / (fy.pow(2).sum(1, keepdim=True).sqrt() + _EPS)
            head = getattr(self, f"lin{index}")
            total = total + head((fx - fy) ** 2).mean(dim=(1, 2, 3))
        return total


def load_lpips_alex(heads: StateSource, backbone: StateSource) -> LPIPSAlex:
    """LPIPSAlex from the lpips package's ``alex.pth`` and torchvision's AlexNet file, strictly, in eval mode."""
    head_state = read_state_dict(heads)
    backbone_state = {k: v for k, v in read_state_dict(backbone).items() if not k.startswith("classifier.")}
    model = LPIPSAlex()
    source = f"{describe_source(heads)} + {describe_source(backbone)}"
    return load_state_strict(model, {**head_state, **backbone_state}, source).eval()
