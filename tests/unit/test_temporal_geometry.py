"""The one temporal smoother and the shared rotations, checked against independent references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter1d
from scipy.spatial.transform import Rotation

from facecontrol.face.geometry import matrix_to_angles, rotation_matrix, rotation_matrix_xyz
from facecontrol.face.temporal import smooth_over_frames


@pytest.mark.parametrize("sigma", [0.5, 1.0, 3.0, 7.5])
def test_smoother_equals_scipy_gaussian_filter_nearest(sigma):
    values = np.random.default_rng(0).normal(size=(23, 4, 2))
    expected = gaussian_filter1d(values, sigma, axis=0, mode="nearest")
    np.testing.assert_allclose(smooth_over_frames(values, sigma), expected, atol=1e-12)
    as_tensor = smooth_over_frames(torch.from_numpy(values), sigma)
    np.testing.assert_allclose(as_tensor.numpy(), expected, atol=1e-12)


def test_smoother_leaves_short_or_unsmoothed_input_alone():
    values = np.arange(6.0).reshape(3, 2)
    assert smooth_over_frames(values, 0.0) is values
    assert smooth_over_frames(values[:1], 2.0) is not None and np.array_equal(
        smooth_over_frames(values[:1], 2.0), values[:1]
    )
    np.testing.assert_allclose(smooth_over_frames(np.ones((9, 3)) * 4.0, 2.0), 4.0)


def test_rotation_matches_scipy_intrinsic_convention():
    angles = torch.tensor([[0.3, -0.2, 0.1], [-1.0, 0.5, 2.0]], dtype=torch.float64)  # (yaw, pitch, roll)
    # R = Rz(roll) Ry(yaw) Rx(pitch) is scipy's extrinsic "xyz" with angles (pitch, yaw, roll)
    expected = Rotation.from_euler("xyz", angles[:, [1, 0, 2]].numpy()).as_matrix()
    np.testing.assert_allclose(rotation_matrix(angles).numpy(), expected, atol=1e-12)
    np.testing.assert_allclose(rotation_matrix_xyz(angles[:, [1, 0, 2]]).numpy(), expected, atol=1e-12)
    torch.testing.assert_close(matrix_to_angles(rotation_matrix(angles[:1])), angles[:1])
