"""DVA semantic encoder: identity (IR-SE50), landmarks (MobileNetV2-GDConv), face mask (BiSeNet), face code.

Keys match the `encoder.*` part of the DVA Lightning checkpoint with that prefix removed:
`idnet.backbone.*`, `lndnet.backbone.*`, `bgnet.backbone.*`, `linear.{weight,bias}`.
All image inputs are (B,3,H,W) RGB in [-1,1], normally the 256x256 FFHQ-aligned crop.
"""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .bisenet import BiSeNet
from .checkpoint import StateSource, describe_source, load_state_strict, read_state, strip_prefix
from .irse50 import IRSEBackbone
from .mobilenet_gdconv import MobileNetGDConv

__all__ = [
    "DVAFaceEncoder",
    "IdentityNet",
    "LandmarkNet",
    "FaceMaskNet",
    "IMAGE_BACKGROUND_CLASSES",
    "VIDEO_BACKGROUND_CLASSES",
    "build_dva_face_encoder",
]

IMAGE_BACKGROUND_CLASSES = (0, 18, 16)  # background, hat, cloth
VIDEO_BACKGROUND_CLASSES = IMAGE_BACKGROUND_CLASSES + (7, 8, 14, 17)  # + ears, neck, hair
JAW_POINTS = 17
ID_CROP = (slice(35, 223), slice(32, 220))  # rows, cols of the 256 crop that IR-SE50 sees
LANDMARK_CROP = slice(16, 240)  # centre 224 of the 256 crop


def _imagenet_normalise(x01: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor((0.485, 0.456, 0.406), dtype=x01.dtype, device=x01.device).view(1, 3, 1, 1)
    std = torch.tensor((0.229, 0.224, 0.225), dtype=x01.dtype, device=x01.device).view(1, 3, 1, 1)
    return (x01 - mean) / std


def _to_256(x: torch.Tensor) -> torch.Tensor:
    return x if x.shape[2] == 256 else F.adaptive_avg_pool2d(x, (256, 256))


class IdentityNet(nn.Module):
    """z_id: pool to 256 (if needed), crop [35:223, 32:220], pool to 112, IR-SE50 -> (B,512) unit vectors."""

    def __init__(self):
        super().__init__()
        self.backbone = IRSEBackbone(112, 50, "ir_se", drop_ratio=0.6, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        face = _to_256(x)[:, :, ID_CROP[0], ID_CROP[1]]
        return self.backbone(F.adaptive_avg_pool2d(face, (112, 112)))


class LandmarkNet(nn.Module):
    """z_lnd: centre 224 crop, ImageNet norm, 136 values clamped to [0,1], jaw points dropped -> (B,102).

    A 224 input is used as is; other sizes are first average-pooled to 256 (the authors only feed
    256 crops, where this is a no-op).
    """

    def __init__(self):
        super().__init__()
        self.backbone = MobileNetGDConv(136)

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        """Unclamped (B,136) network output, (x, y) pairs of 68 points in [0,1] units of the 224 crop."""
        if x.shape[2] != 224:
            x = _to_256(x)[:, :, LANDMARK_CROP, LANDMARK_CROP]
        return self.backbone(_imagenet_normalise((x + 1) / 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        points = self.raw(x).clamp(0, 1).reshape(x.shape[0], 68, 2)
        return points[:, JAW_POINTS:, :].reshape(x.shape[0], -1)


class FaceMaskNet(nn.Module):
    """Face mask from BiSeNet parsing at 512 (nearest resize, [-1,1] -> ImageNet norm)."""

    def __init__(self):
        super().__init__()
        self.backbone = BiSeNet(19)

    def segment(self, x: torch.Tensor):
        """FaceParsing(logits (B,19,512,512), labels (B,1,512,512))."""
        return self.backbone.parse(x, preprocess="imagenet_signed", size=512, resize_mode="nearest")

    def forward(self, x: torch.Tensor, for_video: bool = False, out_size: int | None = None) -> torch.Tensor:
        """(B,1,S,S) float {0,1}, 1 = face. S = out_size, default the input height (256 for DVA crops).

        Image mode drops background, hat and cloth; video mode also drops ears, neck and hair.
        """
        labels = self.segment(x).labels
        return labels_to_face_mask(labels, for_video, out_size or x.shape[2])


def labels_to_face_mask(labels: torch.Tensor, for_video: bool, out_size: int) -> torch.Tensor:
    """Foreground of a (B,1,H,W) BiSeNet label map, nearest-resized to out_size."""
    background = VIDEO_BACKGROUND_CLASSES if for_video else IMAGE_BACKGROUND_CLASSES
    is_background = torch.zeros_like(labels, dtype=torch.bool)
    for cls in background:
        is_background |= labels == cls
    mask = (~is_background).float()
    return F.interpolate(mask, (out_size, out_size), mode="nearest")


class DVAFaceEncoder(nn.Module):
    """z_face = Linear(614 -> 512)(cat(z_id 512, z_lnd 102)), plus the face mask."""

    def __init__(self):
        super().__init__()
        self.idnet = IdentityNet()
        self.lndnet = LandmarkNet()
        self.bgnet = FaceMaskNet()
        self.linear = nn.Linear(614, 512)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """z_face (B,512) of frames x, each with its own identity code."""
        return self.face_code(self.idnet(x), self.lndnet(x))

    def id_forward(self, x: torch.Tensor) -> torch.Tensor:
        """z_id (B,512), l2-normalised."""
        return self.idnet(x)

    def landmarks(self, x: torch.Tensor) -> torch.Tensor:
        """z_lnd (B,102) in [0,1]."""
        return self.lndnet(x)

    def face_code(self, z_id: torch.Tensor, z_lnd: torch.Tensor) -> torch.Tensor:
        """z_face (B,512) from given identity (B,512) and landmark (B,102) codes."""
        return self.linear(torch.cat([z_id, z_lnd], dim=1))

    def forward_with_id(self, z_id: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """z_face with a given identity code (e.g. the video average) and the frames' landmarks."""
        return self.face_code(z_id, self.lndnet(x))

    def face_mask(self, x: torch.Tensor, for_video: bool = False) -> torch.Tensor:
        """(B,1,H,W) float {0,1} face mask."""
        return self.bgnet(x, for_video=for_video)


def build_dva_face_encoder(state_dict: Mapping[str, torch.Tensor] | None = None) -> DVAFaceEncoder:
    """DVAFaceEncoder in eval mode, strictly loaded from an `encoder.`-stripped state dict when given.

    With a state dict the module is built on the meta device and the tensors are assigned (no
    random initialisation); the aliased landmark keys then resolve to the `base_net.0.*` values.
    """
    if state_dict is None:
        return DVAFaceEncoder().eval()
    with torch.device("meta"):
        encoder = DVAFaceEncoder()
    encoder.load_state_dict(dict(state_dict), strict=True, assign=True)
    return encoder.float().eval()


def landmark_checkpoint_filter(checkpoint: Mapping) -> dict[str, torch.Tensor]:
    """The MobileNetV2-GDConv state from its released file: ``mobilenet_224_model_best_gdconv_external.pth.tar``
    wraps it in ``['state_dict']`` with ``module.`` prefixes (DataParallel); a bare state dict passes as is."""
    state = checkpoint.get("state_dict", checkpoint)
    return strip_prefix(state, "module.")


def load_landmark_net(source: StateSource) -> LandmarkNet:
    """LandmarkNet (eval) strictly loaded from the landmark network's released file, its checkpoint dict, or a state
    dict (wrapped or not)."""
    net = LandmarkNet()
    load_state_strict(net.backbone, landmark_checkpoint_filter(read_state(source)), describe_source(source))
    return net.eval()


def encoder_state_from_files(
    checkpoint_encoder: Mapping[str, torch.Tensor],
    idnet: StateSource | None = None,
    lndnet: StateSource | None = None,
    bgnet: StateSource | None = None,
) -> dict[str, torch.Tensor]:
    """The `encoder.*` state with the given networks replaced by their own released files.

    idnet: `model_ir_se50.pth`; lndnet: `mobilenet_224_model_best_gdconv_external.pth.tar` (see
    landmark_checkpoint_filter); bgnet: `79999_iter.pth`. The face-code Linear always comes from the DVA
    checkpoint, which is its only source.
    """
    state = dict(checkpoint_encoder)
    for name, path in (("idnet", idnet), ("lndnet", lndnet), ("bgnet", bgnet)):
        if path is None:
            continue
        loaded = read_state(path)
        loaded = landmark_checkpoint_filter(loaded) if name == "lndnet" else strip_prefix(loaded, "module.")
        state = {k: v for k, v in state.items() if not k.startswith(f"{name}.")}
        state.update({f"{name}.backbone.{k}": v for k, v in loaded.items()})
    return state
