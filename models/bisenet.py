"""BiSeNet face parser, 19 CelebAMask-HQ classes (zllrunning/face-parsing.PyTorch layout).

Keys match `79999_iter.pth` (`cp.*`, `ffm.*`, `conv_out*.*`, no ResNet `fc`). The ResNet-18 inside is
never initialised from the internet: weights always come from a checkpoint.

Classes: 0 background, 1 skin, 2 l_brow, 3 r_brow, 4 l_eye, 5 r_eye, 6 eye_g (glasses), 7 l_ear,
8 r_ear, 9 ear_r (earring), 10 nose, 11 mouth, 12 u_lip, 13 l_lip, 14 neck, 15 neck_l (necklace),
16 cloth, 17 hair, 18 hat.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BiSeNet", "FaceParsing", "BISENET_CLASSES", "Preprocess", "preprocess_for_bisenet", "load_bisenet"]

BISENET_CLASSES = (
    "background",
    "skin",
    "l_brow",
    "r_brow",
    "l_eye",
    "r_eye",
    "eye_g",
    "l_ear",
    "r_ear",
    "ear_r",
    "nose",
    "mouth",
    "u_lip",
    "l_lip",
    "neck",
    "neck_l",
    "cloth",
    "hair",
    "hat",
)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# "imagenet_signed": input in [-1,1] -> clip, (x+1)/2, ImageNet mean/std (DVA's bgnet).
# "imagenet_unit": input in [0,1] -> ImageNet mean/std (zllrunning's own test.py).
# "none": the input is fed as is (Face-Adapter feeds its [-1,1] crop this way).
Preprocess = Literal["imagenet_signed", "imagenet_unit", "none"]


class FaceParsing(NamedTuple):
    logits: torch.Tensor  # (B, 19, H, W) main-head logits at the parsing resolution
    labels: torch.Tensor  # (B, 1, H, W) int64 argmax class ids


class ConvBNReLU(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3, stride: int = 1, padding: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class BasicBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.downsample = None
        if in_ch != out_ch or stride != 1:
            self.downsample = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(shortcut + residual)


def _stage(in_ch: int, out_ch: int, stride: int) -> nn.Sequential:
    return nn.Sequential(BasicBlock(in_ch, out_ch, stride), BasicBlock(out_ch, out_ch, 1))


class ResNet18Features(nn.Module):
    """ResNet-18 trunk returning the 1/8, 1/16 and 1/32 feature maps."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = _stage(64, 64, 1)
        self.layer2 = _stage(64, 128, 2)
        self.layer3 = _stage(128, 256, 2)
        self.layer4 = _stage(256, 512, 2)

    def forward(self, x: torch.Tensor):
        x = self.layer1(self.maxpool(F.relu(self.bn1(self.conv1(x)))))
        feat8 = self.layer2(x)
        feat16 = self.layer3(feat8)
        feat32 = self.layer4(feat16)
        return feat8, feat16, feat32


def _global_avg(x: torch.Tensor) -> torch.Tensor:
    return x.mean(dim=(2, 3), keepdim=True)


class AttentionRefinement(nn.Module):
    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv = ConvBNReLU(in_ch, out_ch, 3, 1, 1)
        self.conv_atten = nn.Conv2d(out_ch, out_ch, 1, bias=False)
        self.bn_atten = nn.BatchNorm2d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv(x)
        return feat * torch.sigmoid(self.bn_atten(self.conv_atten(_global_avg(feat))))


class ContextPath(nn.Module):
    def __init__(self):
        super().__init__()
        self.resnet = ResNet18Features()
        self.arm16 = AttentionRefinement(256, 128)
        self.arm32 = AttentionRefinement(512, 128)
        self.conv_head32 = ConvBNReLU(128, 128, 3, 1, 1)
        self.conv_head16 = ConvBNReLU(128, 128, 3, 1, 1)
        self.conv_avg = ConvBNReLU(512, 128, 1, 1, 0)

    def forward(self, x: torch.Tensor):
        feat8, feat16, feat32 = self.resnet(x)
        global_context = F.interpolate(self.conv_avg(_global_avg(feat32)), feat32.shape[2:], mode="nearest")
        up32 = F.interpolate(self.arm32(feat32) + global_context, feat16.shape[2:], mode="nearest")
        up32 = self.conv_head32(up32)
        up16 = F.interpolate(self.arm16(feat16) + up32, feat8.shape[2:], mode="nearest")
        up16 = self.conv_head16(up16)
        return feat8, up16, up32


class FeatureFusion(nn.Module):
    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.convblk = ConvBNReLU(in_ch, out_ch, 1, 1, 0)
        self.conv1 = nn.Conv2d(out_ch, out_ch // 4, 1, bias=False)
        self.conv2 = nn.Conv2d(out_ch // 4, out_ch, 1, bias=False)

    def forward(self, spatial: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        feat = self.convblk(torch.cat([spatial, context], dim=1))
        attention = torch.sigmoid(self.conv2(F.relu(self.conv1(_global_avg(feat)))))
        return feat * attention + feat


class OutputHead(nn.Module):
    def __init__(self, in_ch: int, mid_ch: int, n_classes: int):
        super().__init__()
        self.conv = ConvBNReLU(in_ch, mid_ch, 3, 1, 1)
        self.conv_out = nn.Conv2d(mid_ch, n_classes, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_out(self.conv(x))


def preprocess_for_bisenet(x: torch.Tensor, preprocess: Preprocess) -> torch.Tensor:
    """Apply one of the input conventions (see `Preprocess`) to a (B,3,H,W) RGB batch."""
    if preprocess == "none":
        return x
    if preprocess == "imagenet_signed":
        x = x.clip(-1, 1).add(1).div(2)
    elif preprocess != "imagenet_unit":
        raise ValueError(f"unknown BiSeNet preprocess {preprocess!r}")
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


class BiSeNet(nn.Module):
    """BiSeNet with the spatial path replaced by ResNet features (as released).

    `forward(x)` returns the three heads (main, aux16, aux32), each (B, n_classes, H, W), upsampled
    bilinearly with align_corners=True. `parse` is the convenience entry point.
    """

    def __init__(self, n_classes: int = 19):
        super().__init__()
        self.cp = ContextPath()
        self.ffm = FeatureFusion(256, 256)
        self.conv_out = OutputHead(256, 256, n_classes)
        self.conv_out16 = OutputHead(128, 64, n_classes)
        self.conv_out32 = OutputHead(128, 64, n_classes)

    def forward(self, x: torch.Tensor):
        feat8, context8, context16 = self.cp(x)
        size = x.shape[2:]
        heads = (
            self.conv_out(self.ffm(feat8, context8)),
            self.conv_out16(context8),
            self.conv_out32(context16),
        )
        return tuple(_upsample(head, size) for head in heads)

    def main_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Only the fused (main) head, (B, n_classes, H, W); skips the two auxiliary heads."""
        feat8, context8, _ = self.cp(x)
        return _upsample(self.conv_out(self.ffm(feat8, context8)), x.shape[2:])

    def parse(
        self,
        x: torch.Tensor,
        preprocess: Preprocess = "imagenet_signed",
        size: int | None = 512,
        resize_mode: str = "nearest",
    ) -> FaceParsing:
        """Parse a (B,3,H,W) RGB batch.

        preprocess: input convention (see `Preprocess`). size: square resolution the network runs
        at (None keeps H,W); resize_mode: the torch interpolate mode used for that resize.
        Returns logits and labels at the parsing resolution.
        """
        if size is not None and tuple(x.shape[2:]) != (size, size):
            x = F.interpolate(x, (size, size), mode=resize_mode)
        logits = self.main_logits(preprocess_for_bisenet(x, preprocess))
        return FaceParsing(logits, logits.argmax(dim=1, keepdim=True))


def _upsample(x: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(x, size, mode="bilinear", align_corners=True)


def load_bisenet(source, n_classes: int = 19) -> BiSeNet:
    """zllrunning ``79999_iter.pth`` (path or state dict) -> eval-mode BiSeNet, strict keys.

    ``module.`` prefixes are stripped."""
    from .checkpoint import describe_source, load_state_strict, read_state, strip_prefix

    model = BiSeNet(n_classes)
    return load_state_strict(model, strip_prefix(read_state(source)), describe_source(source)).eval()
