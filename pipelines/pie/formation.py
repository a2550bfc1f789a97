"""What PIE needs from a 3DMM backend (:class:`FaceFormation`), the parameter groups tau and theta helpers.

theta is a dict of parameter blocks; the groups tau (pose, expression, illumination) name blocks of it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

Theta = dict[str, torch.Tensor]
TAU_KEYS: dict[str, tuple[str, ...]] = {"pose": ("angles",), "expression": ("expression",), "illumination": ("light",)}
LANDMARK_CROP = (16 / 256, 240 / 256)  # the landmark network sees the centre 224 of a 256 view


class FaceFormation(nn.Module):
    """What PIE needs from a 3DMM backend: ``regress`` images to theta (differentiably), ``render`` theta and
    project its 68 ``landmarks``, in the pixels of the image being analysed.

    theta always holds ``angles`` as (yaw, pitch, roll) radians with R = Rz(roll) Ry(yaw) Rx(pitch) (+yaw turns
    the nose to image right, +pitch down, +roll counter-clockwise), ``expression`` and ``light`` (27 SH offsets
    from Deep3DFaceRecon's 0.8 ambient). ``image_landmarks`` (L(I') of the loss) comes from the 68-point
    landmark network whatever the backend.
    """

    name = "base"
    #: identity, camera and appearance blocks an edit of other groups must keep
    kept_keys: tuple[str, ...] = ()
    #: typical spread of each parameter block, so distances between parameters weigh blocks alike
    param_scale: dict[str, float] = {}
    #: names of the expression coefficients the named sliders act on (empty: no named sliders)
    exp_names: list[str] = []

    def __init__(self, landmark_net: nn.Module) -> None:
        super().__init__()
        self.landmark_net = landmark_net

    @property
    def tau_dims(self) -> dict[str, int]:
        raise NotImplementedError

    def image_landmarks(self, images: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) [-1,1] -> (B,68,2) pixels, from the landmark network (differentiable)."""
        size = images.shape[-1]
        view = (
            F.interpolate(images, size=(256, 256), mode="bilinear", align_corners=False, antialias=True)
            if size != 256
            else images
        )
        unit = self.landmark_net.raw(view).view(images.shape[0], 68, 2)
        lo, hi = LANDMARK_CROP
        return (lo + (hi - lo) * unit) * size - 0.5

    def regress(self, images: torch.Tensor) -> Theta:
        raise NotImplementedError

    def render(self, theta: Theta, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """theta -> image in [0,1] (B,3,S,S) and face mask (B,1,S,S)."""
        raise NotImplementedError

    def landmarks(self, theta: Theta, size: int) -> torch.Tensor:
        """(B,68,2) projected landmark vertices in pixels."""
        raise NotImplementedError

    def other_keys(self, edited_keys) -> list[str]:
        """The blocks of theta outside ``edited_keys`` that an edit keeps."""
        return [key for key in self.kept_keys if key not in edited_keys]


def tau_vector(theta: Theta, tau: str) -> torch.Tensor:
    """The parameters of group ``tau`` as one (B,D) vector (RigNet's input)."""
    return torch.cat([theta[key] for key in TAU_KEYS[tau]], -1)


def with_tau(base: Theta, source: Theta, tau: str) -> Theta:
    """[base^not-tau, source^tau]."""
    return {**base, **{key: source[key] for key in TAU_KEYS[tau]}}


def theta_distance(a: Theta, b: Theta, keys, scale: dict[str, float]) -> torch.Tensor:
    """(B,) sum over keys of the mean squared difference in units of each block's typical spread ``scale``."""
    total = 0.0
    for key in keys:
        total = total + ((a[key] - b[key]) / scale[key]).square().flatten(1).mean(1)
    return total


def detach_theta(theta: Theta) -> Theta:
    return {k: v.detach() for k, v in theta.items()}
