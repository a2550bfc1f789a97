"""The Inception-v3 of FID as pytorch-fid computes it (mseitzer/pytorch-fid, the authors' DVA metrics use it).

Loads pytorch-fid's released ``pt_inception-2015-12-05-6726825d.pth`` unchanged: torchvision's Inception3
key layout with 1008 classes and no auxiliary head, ported from the TensorFlow FID graph. It differs from
torchvision's ImageNet model in the pooling of four block types, as the TensorFlow graph pools:
Mixed_5b-5d, 6b-6e and 7b average without counting the zero padding, and Mixed_7c max-pools.

Features: the 2048-d average pool after Mixed_7c of the input resized to 299x299 (bilinear, no corner
alignment) and mapped from [0,1] to [-1,1].
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models import inception as tv_inception

from .checkpoint import StateSource, describe_source, load_state_strict, read_state_dict

__all__ = ["FIDInception", "load_fid_inception", "FID_FEATURES"]

FID_FEATURES = 2048
FID_INPUT_SIZE = 299


def _avg_pool_unpadded(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class _BlockA(tv_inception.InceptionA):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(_avg_pool_unpadded(x))], 1)


class _BlockC(tv_inception.InceptionC):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        b7d = x
        for layer in (
            self.branch7x7dbl_1,
            self.branch7x7dbl_2,
            self.branch7x7dbl_3,
            self.branch7x7dbl_4,
            self.branch7x7dbl_5,
        ):
            b7d = layer(b7d)
        return torch.cat([self.branch1x1(x), b7, b7d, self.branch_pool(_avg_pool_unpadded(x))], 1)


class _BlockE(tv_inception.InceptionE):
    max_pool = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        b3d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        b3d = torch.cat([self.branch3x3dbl_3a(b3d), self.branch3x3dbl_3b(b3d)], 1)
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _avg_pool_unpadded(x)
        return torch.cat([self.branch1x1(x), b3, b3d, self.branch_pool(pooled)], 1)


class _BlockEMax(_BlockE):
    max_pool = True


def _fid_inception3() -> tv_inception.Inception3:
    net = tv_inception.Inception3(num_classes=1008, aux_logits=False, transform_input=False, init_weights=False)
    net.Mixed_5b, net.Mixed_5c, net.Mixed_5d = _BlockA(192, 32), _BlockA(256, 64), _BlockA(288, 64)
    net.Mixed_6b, net.Mixed_6c = _BlockC(768, 128), _BlockC(768, 160)
    net.Mixed_6d, net.Mixed_6e = _BlockC(768, 160), _BlockC(768, 192)
    net.Mixed_7b, net.Mixed_7c = _BlockE(1280), _BlockEMax(2048)
    return net


class FIDInception(nn.Module):
    """(N,3,H,W) images in [0,1] -> (N,2048) FID features. State-dict keys are the released file's."""

    _TRUNK = (
        "Conv2d_1a_3x3",
        "Conv2d_2a_3x3",
        "Conv2d_2b_3x3",
        "maxpool1",
        "Conv2d_3b_1x1",
        "Conv2d_4a_3x3",
        "maxpool2",
        "Mixed_5b",
        "Mixed_5c",
        "Mixed_5d",
        "Mixed_6a",
        "Mixed_6b",
        "Mixed_6c",
        "Mixed_6d",
        "Mixed_6e",
        "Mixed_7a",
        "Mixed_7b",
        "Mixed_7c",
    )

    def __init__(self) -> None:
        super().__init__()
        self.net = _fid_inception3()

    def state_dict(self, *args, **kwargs):
        return self.net.state_dict(*args, **kwargs)

    def load_state_dict(self, state, strict: bool = True, assign: bool = False):
        return self.net.load_state_dict(state, strict=strict, assign=assign)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(images, size=(FID_INPUT_SIZE, FID_INPUT_SIZE), mode="bilinear", align_corners=False)
        x = 2 * x - 1
        for name in self._TRUNK:
            x = getattr(self.net, name)(x)
        return F.adaptive_avg_pool2d(x, 1).flatten(1)


def load_fid_inception(source: StateSource) -> FIDInception:
    """pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` -> eval-mode FIDInception (strict keys).

    BatchNorm step counters (``num_batches_tracked``) are not needed for inference and may be absent.
    """
    model = FIDInception()
    state = read_state_dict(source)
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.zeros_like(value)
    return load_state_strict(model, state, describe_source(source)).eval()
