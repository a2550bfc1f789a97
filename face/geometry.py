"""Rotations and the weak-perspective camera, shared by the 3DMM fits, the BFM and PIE's image formation.

The pack's pose convention: angles (yaw, pitch, roll) in radians, R = Rz(roll) @ Ry(yaw) @ Rx(pitch), points
rotated as ``points @ R^T``; +yaw turns the nose to the image right. The BFM's (Deep3DFaceRecon's) angles
are ordered (x, y, z) = (pitch, yaw, roll) with the same R.
"""

from __future__ import annotations

import torch

XYZ_FROM_YAW_PITCH_ROLL = [1, 0, 2]  # index (yaw, pitch, roll) angles with this to get (x, y, z)
YAW_PITCH_ROLL_FROM_XYZ = [1, 0, 2]


def rotation_matrix_xyz(angles: torch.Tensor) -> torch.Tensor:
    """(..., 3) Euler angles (x, y, z) -> (..., 3, 3) R = Rz @ Ry @ Rx."""
    x, y, z = angles.unbind(-1)
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    rot_x = torch.stack([one, zero, zero, zero, x.cos(), -x.sin(), zero, x.sin(), x.cos()], -1).unflatten(-1, (3, 3))
    rot_y = torch.stack([y.cos(), zero, y.sin(), zero, one, zero, -y.sin(), zero, y.cos()], -1).unflatten(-1, (3, 3))
    rot_z = torch.stack([z.cos(), -z.sin(), zero, z.sin(), z.cos(), zero, zero, zero, one], -1).unflatten(-1, (3, 3))
    return rot_z @ rot_y @ rot_x


def rotation_matrix(angles: torch.Tensor) -> torch.Tensor:
    """(..., 3) (yaw, pitch, roll) -> (..., 3, 3) ``Rz(roll) @ Ry(yaw) @ Rx(pitch)``."""
    return rotation_matrix_xyz(angles[..., XYZ_FROM_YAW_PITCH_ROLL])


def matrix_to_angles(rotation: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (..., 3) (yaw, pitch, roll), the inverse of :func:`rotation_matrix` for |yaw| < 90 deg."""
    yaw = torch.asin((-rotation[..., 2, 0]).clamp(-1.0, 1.0))
    pitch = torch.atan2(rotation[..., 2, 1], rotation[..., 2, 2])
    roll = torch.atan2(rotation[..., 1, 0], rotation[..., 0, 0])
    return torch.stack([yaw, pitch, roll], -1)


def weak_perspective(
    points: torch.Tensor, angles: torch.Tensor, scale: torch.Tensor, translation: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate (B,P,3) model points by (B,3) angles and project with a (B,) or (B,1) scale and (B,2) translation.

    Returns the rotated points (B,P,3) and the image points (B,P,2): u = s x + tx, v = ty - s y (image y down).
    """
    rotated = points @ rotation_matrix(angles).transpose(-1, -2)
    scale = scale.reshape(-1, 1)
    u = scale * rotated[..., 0] + translation[:, None, 0]
    v = translation[:, None, 1] - scale * rotated[..., 1]
    return rotated, torch.stack([u, v], -1)
