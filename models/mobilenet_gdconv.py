"""MobileNetV2-GDConv 68-point landmark regressor (cunjian/pytorch_face_landmark layout).

Keys match `mobilenet_224_model_best_gdconv_external.pth.tar` ['state_dict'] after stripping `module.`.
That file lists every MobileNetV2 feature tensor twice, as `pretrain_net.features.*` and
`base_net.0.*`, because the original module reuses the same sub-modules under both names. This module
does the same, so a strict load accepts the file and the `base_net.0.*` values (loaded last) are the
ones in effect. `pretrain_net.classifier.*` is the unused ImageNet head, kept for a strict load.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import mobilenet_v2

__all__ = ["MobileNetGDConv"]


class ConvBNBlock(nn.Module):
    """Conv (optionally depthwise) + BatchNorm, with a PReLU unless `linear`."""

    def __init__(self, inp: int, oup: int, kernel, stride, padding, depthwise: bool = False, linear: bool = False):
        super().__init__()
        groups = inp if depthwise else 1
        self.conv = nn.Conv2d(inp, oup, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(oup)
        self.prelu = None if linear else nn.PReLU(oup)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        return x if self.prelu is None else self.prelu(x)


class MobileNetGDConv(nn.Module):
    """(B,3,224,224) ImageNet-normalised face crop -> (B, num_outputs) raw landmark values.

    For the 136-output model the values are (x0, y0, x1, y1, ...) of 68 iBUG points in [0,1] crop units.
    """

    def __init__(self, num_outputs: int = 136):
        super().__init__()
        self.pretrain_net = mobilenet_v2(weights=None)
        # Same module objects under a second name: both key sets exist, base_net.0.* loads last.
        self.base_net = nn.Sequential(self.pretrain_net.features)
        self.linear7 = ConvBNBlock(1280, 1280, (7, 7), 1, 0, depthwise=True, linear=True)
        self.linear1 = ConvBNBlock(1280, num_outputs, 1, 1, 0, linear=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.linear1(self.linear7(self.base_net(x)))
        return x.flatten(1)
