"""3DMM coefficient regressors: Face-Adapter's D3DFR (261 outputs) and Deep3DFaceRecon's ReconNet (257).

Both are a torchvision-style ResNet under ``backbone.*`` (no fc), a global average pool and one 1x1 conv
head per coefficient group. State-dict keys match the released files:
Face-Adapter ``d3dfr_res50_nofc.pth`` (heads spelled ``fianl_layers``, sic; keys may carry ``module.``)
and Deep3DFaceRecon ``epoch_20.pth`` (``{'net_recon': state, 'opt_00': ...}``, heads ``final_layers``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import torch
import torch.nn as nn
import torchvision

from .checkpoint import StateSource, describe_source, load_state_strict, read_state, strip_prefix

logger = logging.getLogger(__name__)


# Deep3DFaceRecon coefficient layout; Face-Adapter appends 4 gaze values.
COEFF_LAYOUT: dict[str, tuple[int, int]] = {
    "id": (0, 80),
    "exp": (80, 144),
    "tex": (144, 224),
    "angle": (224, 227),
    "gamma": (227, 254),
    "trans": (254, 257),
    "gaze": (257, 261),
}
BFM_COEFF_DIM = 257
HEAD_SIZES_257 = (80, 64, 80, 3, 27, 2, 1)  # id, exp, tex, angle, gamma, (tx, ty), tz

_RESNETS = {
    "resnet18": (torchvision.models.resnet18, 512),
    "resnet34": (torchvision.models.resnet34, 512),
    "resnet50": (torchvision.models.resnet50, 2048),
}


def split_coeffs(coeffs: torch.Tensor) -> dict[str, torch.Tensor]:
    """Split (B,257) or (B,261) coefficients into id, exp, tex, angle, gamma, trans [, gaze]."""
    if coeffs.ndim != 2 or coeffs.shape[1] < BFM_COEFF_DIM:
        raise ValueError(f"expected (B,257) or (B,261) 3DMM coefficients, got {tuple(coeffs.shape)}")
    return {name: coeffs[:, start:stop] for name, (start, stop) in COEFF_LAYOUT.items() if stop <= coeffs.shape[1]}


def _resnet_trunk(arch: str, num_outputs: int, use_last_fc: bool) -> tuple[nn.Module, int]:
    if arch not in _RESNETS:
        raise ValueError(f"unsupported backbone {arch!r}; choose one of {sorted(_RESNETS)}")
    build, feature_dim = _RESNETS[arch]
    trunk = build(weights=None, num_classes=num_outputs)
    if not use_last_fc:
        trunk.fc = nn.Identity()  # no parameters, so no fc keys in the state dict
    return trunk, feature_dim


def _pooled_features(trunk: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """ResNet stem, four stages and global average pool, kept as (B,C,1,1) for the 1x1 heads."""
    x = trunk.maxpool(trunk.relu(trunk.bn1(trunk.conv1(x))))
    x = trunk.layer4(trunk.layer3(trunk.layer2(trunk.layer1(x))))
    return trunk.avgpool(x)


class _CoeffRegressor(nn.Module):
    """ResNet + 1x1-conv heads whose outputs are concatenated in head order."""

    heads_name = "final_layers"

    def __init__(self, arch: str, output_dim: int, use_last_fc: bool) -> None:
        super().__init__()
        self.output_dim = output_dim
        self.use_last_fc = use_last_fc
        self.backbone, feature_dim = _resnet_trunk(arch, output_dim, use_last_fc)
        if not use_last_fc:
            heads = nn.ModuleList(nn.Conv2d(feature_dim, n, 1, bias=True) for n in _head_sizes(output_dim))
            self.add_module(self.heads_name, heads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_last_fc:
            return self.backbone(x)
        features = _pooled_features(self.backbone, x)
        heads = getattr(self, self.heads_name)
        return torch.flatten(torch.cat([head(features) for head in heads], dim=1), 1)


def _head_sizes(output_dim: int) -> tuple[int, ...]:
    if output_dim < BFM_COEFF_DIM:
        raise ValueError(f"output_dim must be at least {BFM_COEFF_DIM}, got {output_dim}")
    extra = output_dim - BFM_COEFF_DIM
    return HEAD_SIZES_257 + ((extra,) if extra else ())


class D3DFRRegressor(_CoeffRegressor):
    """Face-Adapter ``ResNet50_nofc([256,256], 261)``: 256x256 ArcFace-template crop, RGB in [-1,1] -> (B,261).

    Output layout: see ``COEFF_LAYOUT`` (257 Deep3DFaceRecon values, then gaze: left dx,dy, right dx,dy).
    """

    heads_name = "fianl_layers"  # sic: the released checkpoint's spelling

    def __init__(
        self, input_size: tuple[int, int] = (256, 256), output_dim: int = 261, use_last_fc: bool = False
    ) -> None:
        super().__init__("resnet50", output_dim, use_last_fc)
        self.input_size = tuple(input_size)


class Deep3DFaceReconRegressor(_CoeffRegressor):
    """Deep3DFaceRecon ``ReconNetWrapper``: 224x224 aligned face, RGB in [0,1] -> (B,257)."""

    heads_name = "final_layers"

    def __init__(
        self,
        net_recon: str = "resnet50",
        use_last_fc: bool = False,
        init_path: str | None = None,
        fc_dim: int = BFM_COEFF_DIM,
    ) -> None:
        super().__init__(net_recon, fc_dim, use_last_fc)
        if init_path:
            # The authors' init_path is an ImageNet start for training; inference loads epoch_20.pth instead.
            logger.info("Deep3DFaceReconRegressor ignores init_path %s (training initialisation only)", init_path)


def load_d3dfr(source: StateSource, **config) -> D3DFRRegressor:
    """Face-Adapter ``d3dfr_res50_nofc.pth`` (optionally ``module.``-prefixed) -> eval-mode D3DFRRegressor.

    Unlike the authors (strict=False, then BN fusion) this loads strictly and keeps BatchNorm separate.
    """
    state = strip_prefix(read_state(source))
    model = D3DFRRegressor(**config)
    return load_state_strict(model, state, describe_source(source)).eval()


def load_deep3dfacerecon(source: StateSource, **config) -> Deep3DFaceReconRegressor:
    """Deep3DFaceRecon ``epoch_20.pth`` (``{'net_recon': state, ...}``) or a bare state -> eval-mode regressor."""
    checkpoint = read_state(source)
    state = checkpoint["net_recon"] if "net_recon" in checkpoint else checkpoint
    if not isinstance(state, Mapping):
        raise ValueError(f"{describe_source(source)}: 'net_recon' is not a state dict")
    model = Deep3DFaceReconRegressor(**config)
    return load_state_strict(model, strip_prefix(state), describe_source(source)).eval()
