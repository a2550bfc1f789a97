"""insightface iresnet100 (Glint360K) as Face-Adapter uses it.

Two read-outs: the layer4 feature map as 64 spatial tokens at 128 px (what ID2Token consumes) and
the 512-d recognition embedding at 112 px. Inputs are RGB in [-1, 1]. State-dict keys match the
released `insightface_glint360k.pth` and arcface_torch r100 `backbone.pth` (plain, no prefix).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import StateSource, read_state_dict

logger = logging.getLogger(__name__)


BN_EPS = 1e-5
STAGE_WIDTHS = (64, 128, 256, 512)
TOKEN_INPUT_SIZE = 128
EMBEDDING_INPUT_SIZE = 112


def conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=False)


class IBasicBlock(nn.Module):
    """BN -> conv3x3 -> BN -> PReLU -> conv3x3(stride) -> BN, plus the shortcut; no activation after the sum."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_ch, eps=BN_EPS)
        self.conv1 = conv3x3(in_ch, out_ch)
        self.bn2 = nn.BatchNorm2d(out_ch, eps=BN_EPS)
        self.prelu = nn.PReLU(out_ch)
        self.conv2 = conv3x3(out_ch, out_ch, stride)
        self.bn3 = nn.BatchNorm2d(out_ch, eps=BN_EPS)
        self.downsample = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_ch, eps=BN_EPS),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        shortcut = x if self.downsample is None else self.downsample(x)
        return out + shortcut


def make_stage(in_ch: int, out_ch: int, num_blocks: int) -> nn.Sequential:
    blocks = [IBasicBlock(in_ch, out_ch, stride=2)]
    blocks += [IBasicBlock(out_ch, out_ch) for _ in range(1, num_blocks)]
    return nn.Sequential(*blocks)


class IResNet(nn.Module):
    """insightface IResNet; the defaults give iresnet100."""

    def __init__(
        self,
        layers: Sequence[int] = (3, 13, 30, 3),
        dropout: float = 0.0,
        num_features: int = 512,
        fc_scale: int = 7 * 7,
        block: str = "IBasicBlock",
    ) -> None:
        super().__init__()
        if block != "IBasicBlock":
            raise ValueError(f"only IBasicBlock is supported, got {block!r}")
        self.conv1 = nn.Conv2d(3, STAGE_WIDTHS[0], kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(STAGE_WIDTHS[0], eps=BN_EPS)
        self.prelu = nn.PReLU(STAGE_WIDTHS[0])
        in_widths = (STAGE_WIDTHS[0],) + STAGE_WIDTHS[:-1]
        for index, (in_ch, out_ch, blocks) in enumerate(zip(in_widths, STAGE_WIDTHS, layers), start=1):
            setattr(self, f"layer{index}", make_stage(in_ch, out_ch, blocks))
        self.bn2 = nn.BatchNorm2d(STAGE_WIDTHS[-1], eps=BN_EPS)
        # kept for the module layout; the authors' forward never applies it
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(STAGE_WIDTHS[-1] * fc_scale, num_features)
        self.features = nn.BatchNorm1d(num_features, eps=BN_EPS)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> layer4 map (B, 512, H/16, W/16)."""
        x = self.prelu(self.bn1(self.conv1(x)))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, 128, 128) in [-1, 1] -> (B, 64, 512): layer4 flattened, one token per position."""
        fmap = self.feature_map(x)
        return fmap.flatten(2).transpose(1, 2).contiguous()

    def spatial_tokens(self, x256: torch.Tensor) -> torch.Tensor:
        """The 256 ArcFace-template crop in [-1, 1] -> (B, 64, 512) identity tokens for ID2Token.

        Resized to 128 as infer.py does: bilinear, align_corners=False, no antialias.
        """
        if x256.shape[-2:] != (TOKEN_INPUT_SIZE, TOKEN_INPUT_SIZE):
            x256 = F.interpolate(
                x256, size=(TOKEN_INPUT_SIZE, TOKEN_INPUT_SIZE), mode="bilinear", align_corners=False, antialias=False
            )
        return self.tokens(x256)

    def embedding(self, x112: torch.Tensor) -> torch.Tensor:
        """(B, 3, 112, 112) in [-1, 1] -> (B, 512) identity embedding, not L2-normalised."""
        if x112.shape[-2:] != (EMBEDDING_INPUT_SIZE, EMBEDDING_INPUT_SIZE):
            raise ValueError(f"the embedding head needs 112x112 input, got {tuple(x112.shape[-2:])}")
        x = self.bn2(self.feature_map(x112))
        return self.features(self.fc(x.flatten(1)))

    def forward(self, x: torch.Tensor, return_id512: bool = False) -> torch.Tensor:
        """The authors' call signature: tokens by default, the embedding with return_id512=True."""
        return self.embedding(x) if return_id512 else self.tokens(x)


def iresnet100(**kwargs) -> IResNet:
    return IResNet(layers=(3, 13, 30, 3), **kwargs)


def load_iresnet100(source: StateSource) -> IResNet:
    """iresnet100 from insightface_glint360k.pth (or a state dict): strict keys, float32, eval mode."""
    state = read_state_dict(source)
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    model = iresnet100()
    model.load_state_dict(state, strict=True)
    logger.debug("loaded iresnet100 with %d tensors", len(state))
    return model.float().eval()
