"""Input checks of the face nodes for inputs no core ComfyUI node produces (grayscale, empty batch).

These call the node classes directly with ComfyUI importable in this process; the server tests cover
the same checks end to end where a workflow can produce the input (RGBA, mismatched batches).
"""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from comfy_client import comfyui_dir

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def face_nodes():
    sys.path.insert(0, str(comfyui_dir()))
    from facecontrol.nodes import face_nodes

    return face_nodes


def test_grayscale_image_is_refused(face_nodes):
    gray = torch.rand(1, 64, 64, 1)
    with pytest.raises(ValueError, match=r"'image' is grayscale \(1 channel\)"):
        face_nodes.DetectFaces.execute(gray, "mediapipe", "largest", 0, "left-right", 0.5, 0.5, True, "error")


def test_empty_batch_is_refused(face_nodes):
    empty = torch.zeros(0, 64, 64, 3)
    with pytest.raises(ValueError, match=r"'image' is an empty batch"):
        face_nodes.DetectFaces.execute(empty, "mediapipe", "largest", 0, "left-right", 0.5, 0.5, True, "error")


def test_paste_back_refuses_a_crop_of_the_wrong_size(face_nodes):
    from facecontrol.face.align import ffhq_crop

    lm68 = np.random.default_rng(0).uniform(20, 40, (1, 68, 2))
    crop = ffhq_crop(lm68, (64, 64), 32)
    with pytest.raises(ValueError, match=r"'crops' are 16x16 but 'face_crop' makes 32x32 crops"):
        face_nodes.PasteBack.execute(torch.rand(1, 64, 64, 3), torch.rand(1, 16, 16, 3), crop, 4)
