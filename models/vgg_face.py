"""VGG-Face (Parkhi, Vedaldi, Zisserman, "Deep Face Recognition", BMVC 2015) as a face descriptor.

PIE uses VGG-Face for its recognition energy; the pack's default is IR-SE50 (``dva_face_encoder.IdentityNet``),
and this module offers VGG-Face beside it. Released layout read here: ``vgg_face_dag.pth`` of S. Albanie's
pytorch-mcn conversions of the Oxford VGG-Face MatConvNet release (a plain ``torch.save`` state dict): keys
``conv{1_1,1_2,2_1,2_2,3_1,3_2,3_3,4_1,4_2,4_3,5_1,5_2,5_3}.{weight,bias}`` (3x3, padding 1, 2x2 max pools
after blocks 1-5), ``fc6`` Linear 25088 -> 4096, ``fc7`` 4096 -> 4096, ``fc8`` 4096 -> 2622 (the training
identities). Input: RGB 224 x 224 in 0..255 minus the per-channel mean (129.186, 104.762, 93.594), std 1.

The descriptor is fc7 after its ReLU, L2-normalised (fc8 only scores the 2622 training identities). The
whole [-1, 1] crop is resized to 224: VGG-Face was trained on loose face crops, and FFHQ crops are loose.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
from torch import nn
from torch.nn import functional as F

from .checkpoint import load_state_strict, read_state

# (name, in, out) per convolution; a 2x2 max pool follows the last convolution of each block.
BLOCKS = (
    (("conv1_1", 3, 64), ("conv1_2", 64, 64)),
    (("conv2_1", 64, 128), ("conv2_2", 128, 128)),
    (("conv3_1", 128, 256), ("conv3_2", 256, 256), ("conv3_3", 256, 256)),
    (("conv4_1", 256, 512), ("conv4_2", 512, 512), ("conv4_3", 512, 512)),
    (("conv5_1", 512, 512), ("conv5_2", 512, 512), ("conv5_3", 512, 512)),
)
MEAN_RGB = (129.186279296875, 104.76238250732422, 93.59396362304688)
INPUT_SIZE = 224
NUM_IDENTITIES = 2622
DESCRIPTOR_DIM = 4096


class VGGFace(nn.Module):
    """VGG-Face with ``vgg_face_dag.pth``'s key names; ``forward`` maps [-1, 1] RGB crops to unit fc7 descriptors."""

    def __init__(self) -> None:
        super().__init__()
        for block in BLOCKS:
            for name, in_channels, out_channels in block:
                setattr(self, name, nn.Conv2d(in_channels, out_channels, 3, padding=1))
        self.fc6 = nn.Linear(512 * 7 * 7, DESCRIPTOR_DIM)
        self.fc7 = nn.Linear(DESCRIPTOR_DIM, DESCRIPTOR_DIM)
        self.fc8 = nn.Linear(DESCRIPTOR_DIM, NUM_IDENTITIES)
        self.register_buffer("mean", torch.tensor(MEAN_RGB).view(1, 3, 1, 1), persistent=False)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) in [-1, 1] -> the network's 224 px, 0..255 mean-subtracted input."""
        if images.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
            images = F.interpolate(
                images,
                size=(INPUT_SIZE, INPUT_SIZE),
                mode="bilinear",
                align_corners=False,
                antialias=images.shape[-1] > INPUT_SIZE,
            )
        return (images + 1) * 127.5 - self.mean

    def fc7_features(self, images: torch.Tensor) -> torch.Tensor:
        x = self.preprocess(images)
        for block in BLOCKS:
            for name, _, _ in block:
                x = F.relu(getattr(self, name)(x))
            x = F.max_pool2d(x, 2, 2)
        x = F.relu(self.fc6(x.flatten(1)))
        return F.relu(self.fc7(x))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) in [-1, 1] -> (B, 4096) unit-length descriptors."""
        return F.normalize(self.fc7_features(images), dim=-1)

    def identity_logits(self, images: torch.Tensor) -> torch.Tensor:
        """fc8: scores of the 2622 training identities (what the released network classifies)."""
        return self.fc8(self.fc7_features(images))


def load_vgg_face(source: str | Path | Mapping[str, torch.Tensor]) -> VGGFace:
    """``vgg_face_dag.pth`` (or its state dict) -> :class:`VGGFace` in eval mode, no grad; strict keys."""
    state = read_state(source)
    label = str(source) if isinstance(source, (str, Path)) else "VGG-Face state dict"
    return load_state_strict(VGGFace(), state, label).eval().requires_grad_(False)
