"""Face-Adapter Adapting Area Predictor (``face_adapter/model_seg_unet.py`` ``UNet``, file ``net_seg_res18.pth``).

A ResNet-18 encoder whose stem takes 6 channels (512 aligned image + 70-point landmark image, both in [-1,1]),
five conv-BN-ReLU x2 decoder stages with bilinear x2 upsampling, a 1x1 head and a sigmoid. Keys:
``backbone.{conv1,bn1,layer1..4}.*``, ``decoder{1..5}.{0,1,3,4}.*``, ``final_conv.*`` (plain OrderedDict).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torchvision

from .checkpoint import StateSource, describe_source, load_state_strict, read_state, strip_prefix

IN_CHANNELS = 6


def _conv_bn_relu_x2(in_dim: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_dim, out_dim, 3, 1, 1, bias=False),
        nn.BatchNorm2d(out_dim),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_dim, out_dim, 3, 1, 1, bias=False),
        nn.BatchNorm2d(out_dim),
        nn.ReLU(inplace=True),
    )


def _resnet18_encoder(in_channels: int) -> nn.Module:
    encoder = torchvision.models.resnet18(weights=None)
    encoder.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    del encoder.fc, encoder.avgpool  # the released file has no classifier keys
    return encoder


class AdaptingAreaPredictor(nn.Module):
    """(B,6,H,W) in [-1,1], H and W multiples of 32 -> (B,num_classes,H,W) probabilities in [0,1]."""

    def __init__(
        self,
        fea_dims: Sequence[int] = (64, 64, 128, 256, 512),
        out_dims: Sequence[int] = (16, 32, 64, 128, 256),
        num_classes: int = 1,
    ) -> None:
        super().__init__()
        if tuple(fea_dims) != (64, 64, 128, 256, 512):
            raise ValueError(f"fea_dims must be the ResNet-18 widths (64, 64, 128, 256, 512), got {tuple(fea_dims)}")
        self.backbone = _resnet18_encoder(IN_CHANNELS)
        self.decoder1 = _conv_bn_relu_x2(fea_dims[4] + fea_dims[3], out_dims[4])
        self.decoder2 = _conv_bn_relu_x2(fea_dims[3] + fea_dims[2], out_dims[3])
        self.decoder3 = _conv_bn_relu_x2(fea_dims[2] + fea_dims[1], out_dims[2])
        self.decoder4 = _conv_bn_relu_x2(fea_dims[1] + fea_dims[0], out_dims[1])
        self.decoder5 = _conv_bn_relu_x2(out_dims[1], out_dims[0])
        self.upsample = nn.Upsample(scale_factor=2, mode="bilinear")
        self.final_conv = nn.Conv2d(out_dims[0], num_classes, 1, 1, bias=True)

    def _encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        b = self.backbone
        stem = b.relu(b.bn1(b.conv1(x)))  # 1/2
        x1 = b.layer1(b.maxpool(stem))  # 1/4
        x2 = b.layer2(x1)  # 1/8
        x3 = b.layer3(x2)  # 1/16
        return [stem, x1, x2, x3, b.layer4(x3)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != IN_CHANNELS or x.shape[-1] % 32 or x.shape[-2] % 32:
            raise ValueError(f"expected (B,6,H,W) with H, W multiples of 32, got {tuple(x.shape)}")
        skips = self._encode(x)
        y = skips[4]
        for decoder, skip in zip((self.decoder1, self.decoder2, self.decoder3, self.decoder4), reversed(skips[:4])):
            y = decoder(torch.cat([skip, self.upsample(y)], dim=1))
        y = self.decoder5(self.upsample(y))
        return self.final_conv(y).sigmoid()

    @torch.no_grad()
    def predict_mask(self, img512: torch.Tensor, pts70: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
        """Binary adapting-area mask (B,1,H,W) float {0,1}: probability > threshold.

        img512 and pts70 are (B,3,H,W) in [-1,1] (the aligned crop and ``draw_pts70``'s control tensor).
        """
        if img512.shape != pts70.shape:
            raise ValueError(f"image {tuple(img512.shape)} and landmark image {tuple(pts70.shape)} differ in shape")
        prob = self(torch.cat([img512, pts70], dim=1))
        return (prob > threshold).to(prob.dtype)


def load_seg_unet(source: StateSource, **config) -> AdaptingAreaPredictor:
    """Face-Adapter ``net_seg_res18.pth`` (path or state dict) -> eval-mode AdaptingAreaPredictor (strict)."""
    model = AdaptingAreaPredictor(**config)
    return load_state_strict(model, strip_prefix(read_state(source)), describe_source(source)).eval()
