"""IR-SE50 ArcFace backbone (TreB1eN InsightFace_Pytorch layout, as used by pSp and DVA).

Keys match `model_ir_se50.pth`: `input_layer.*`, `body.N.{shortcut_layer,res_layer}.*`, `output_layer.*`.
`forward` returns l2-normalised 512-d embeddings of 112x112 (or 224x224) crops.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["IRSEBackbone", "ir_se50"]

# (in_channels, depth, units) per stage; the first unit of each stage has stride 2.
_STAGES = {
    50: [(64, 64, 3), (64, 128, 4), (128, 256, 14), (256, 512, 3)],
    100: [(64, 64, 3), (64, 128, 13), (128, 256, 30), (256, 512, 3)],
    152: [(64, 64, 3), (64, 128, 8), (128, 256, 36), (256, 512, 3)],
}


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, bias=False)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = F.adaptive_avg_pool2d(x, 1)
        gate = torch.sigmoid(self.fc2(F.relu(self.fc1(gate))))
        return x * gate


class IRUnit(nn.Module):
    """Improved-residual bottleneck: BN-conv-PReLU-conv-BN(-SE) plus a (strided) shortcut."""

    def __init__(self, in_channels: int, depth: int, stride: int, use_se: bool = True):
        super().__init__()
        if in_channels == depth:
            self.shortcut_layer: nn.Module = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(in_channels, depth, 1, stride, bias=False), nn.BatchNorm2d(depth)
            )
        layers: list[nn.Module] = [
            nn.BatchNorm2d(in_channels),
            nn.Conv2d(in_channels, depth, 3, 1, 1, bias=False),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, 3, stride, 1, bias=False),
            nn.BatchNorm2d(depth),
        ]
        if use_se:
            layers.append(SqueezeExcite(depth, 16))
        self.res_layer = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class IRSEBackbone(nn.Module):
    """IR / IR-SE ArcFace backbone; input (B,3,S,S) with S = input_size, output (B,512) unit vectors."""

    def __init__(
        self,
        input_size: int = 112,
        num_layers: int = 50,
        mode: str = "ir_se",
        drop_ratio: float = 0.6,
        affine: bool = True,
    ):
        super().__init__()
        if input_size not in (112, 224):
            raise ValueError("input_size must be 112 or 224")
        if mode not in ("ir", "ir_se"):
            raise ValueError("mode must be 'ir' or 'ir_se'")
        self.input_layer = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64))
        units = []
        for in_channels, depth, count in _STAGES[num_layers]:
            units.append(IRUnit(in_channels, depth, 2, mode == "ir_se"))
            units.extend(IRUnit(depth, depth, 1, mode == "ir_se") for _ in range(count - 1))
        self.body = nn.Sequential(*units)
        side = input_size // 16
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(512),
            nn.Dropout(drop_ratio),
            nn.Flatten(),
            nn.Linear(512 * side * side, 512),
            nn.BatchNorm1d(512, affine=affine),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.output_layer(self.body(self.input_layer(x)))
        return features / torch.norm(features, 2, 1, True)


def ir_se50(state_dict: dict[str, torch.Tensor] | None = None) -> IRSEBackbone:
    """IR-SE50 at 112 px (pSp / DVA `model_ir_se50.pth`), optionally loaded strictly, in eval mode."""
    model = IRSEBackbone(112, 50, "ir_se", drop_ratio=0.6, affine=True)
    if state_dict is not None:
        model.load_state_dict(state_dict, strict=True)
    return model.eval()
