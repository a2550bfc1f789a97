"""Input checks of the face nodes for inputs no core ComfyUI node produces (grayscale, empty batch).

These call the node classes directly with ComfyUI importable in this process; the server tests cover
the same checks end to end where a workflow can produce the input (RGBA, mismatched batches).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.comfy


LARGEST_FACE = dict(select="largest", index=0, order="left-right", x=0.5, y=0.5, track=True, if_no_face="error")


@pytest.fixture(scope="module")
def face_nodes(comfy_in_process):
    from facecontrol.nodes import face_nodes

    return face_nodes


def test_grayscale_image_is_refused(face_nodes):
    gray = torch.rand(1, 64, 64, 1)
    with pytest.raises(ValueError, match=r"'image' is grayscale \(1 channel\)"):
        face_nodes.DetectFaces.execute(gray, "mediapipe", **LARGEST_FACE)


def test_empty_batch_is_refused(face_nodes):
    empty = torch.zeros(0, 64, 64, 3)
    with pytest.raises(ValueError, match=r"'image' is an empty batch"):
        face_nodes.DetectFaces.execute(empty, "mediapipe", **LARGEST_FACE)


def test_paste_back_refuses_a_crop_of_the_wrong_size(face_nodes):
    from facecontrol.face.align import ffhq_crop

    lm68 = np.random.default_rng(0).uniform(20, 40, (1, 68, 2))
    crop = ffhq_crop(lm68, (64, 64), 32)
    with pytest.raises(ValueError, match=r"'crops' are 16x16 but 'face_crop' makes 32x32 crops"):
        face_nodes.PasteBack.execute(torch.rand(1, 64, 64, 3), torch.rand(1, 16, 16, 3), crop, 4)


@pytest.fixture(scope="module")
def combine_nodes(comfy_in_process):
    from facecontrol.nodes import face_adapter_nodes, spatial_nodes

    return spatial_nodes.SpatialControl, face_adapter_nodes.FaceAdapterBlend


def test_spatial_control_and_blend_broadcast_and_name_size_mismatches(combine_nodes):
    control_node, blend_node = combine_nodes
    base = torch.rand(3, 64, 64, 3)
    landmarks = torch.zeros(1, 64, 64, 3)
    mask = torch.zeros(1, 64, 64)
    mask[:, 24:40, 24:40] = 1  # feathering (max-pool 17, avg-pool 17) stays 16 px inside the crop
    control = control_node.execute(landmarks, base, mask).result[0]
    assert control.shape == (3, 64, 64, 3)
    assert torch.equal(control[:, :24], base[:, :24]) and control[:, 24:40, 24:40].max() == 0
    out, weight = blend_node.execute(torch.ones(3, 64, 64, 3), base, mask).result
    assert out.shape == (3, 64, 64, 3) and weight.shape == (3, 64, 64)
    assert torch.allclose(out[:, 32, 32], torch.ones(3, 3)) and torch.equal(out[:, 0, 0], base[:, 0, 0])
    with pytest.raises(ValueError, match=r"sizes differ: 'landmark_image' 32x32, 'base_image' 64x64"):
        control_node.execute(torch.zeros(1, 32, 32, 3), base, mask)
    with pytest.raises(ValueError, match=r"'mask' has 2 items but 'the batch' has 3|'mask' has 2 items"):
        blend_node.execute(torch.ones(3, 64, 64, 3), base, mask.repeat(2, 1, 1))
