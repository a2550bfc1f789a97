"""FaceControl faces with ComfyUI core's own face nodes, in a real server.

Our faces go out as core's FACE_LANDMARKS and come back; where the ComfyUI in use has core's MediaPipe nodes
(0.23+), core's own Draw Face Mask node reads our payload and must cover the detected face.
"""

from __future__ import annotations

import numpy as np
import pytest
from comfy_test_utils import saved_image

from comfy_client import load_workflow

pytestmark = pytest.mark.integration


def _faces_round_trip() -> dict:
    prompt = {k: v for k, v in load_workflow("face_group_select").items() if k in ("1", "2")}
    prompt["40"] = {"class_type": "FaceControlFacesToCoreLandmarks", "inputs": {"faces": ["2", 0]}}
    prompt["41"] = {
        "class_type": "FaceControlFacesFromCoreLandmarks",
        "inputs": {
            "face_landmarks": ["40", 0],
            "select": "largest",
            "index": 0,
            "order": "left-right",
            "x": 0.5,
            "y": 0.5,
            "track": True,
            "if_no_face": "error",
        },
    }
    prompt["42"] = {
        "class_type": "FaceControlPreviewFaces",
        "inputs": {"image": ["1", 0], "faces": ["41", 0], "show_478": False},
    }
    prompt["43"] = {
        "class_type": "SaveImage",
        "inputs": {"images": ["42", 0], "filename_prefix": "facecontrol/core_round_trip"},
    }
    prompt["44"] = {
        "class_type": "FaceControlPreviewFaces",
        "inputs": {"image": ["1", 0], "faces": ["2", 0], "show_478": False},
    }
    prompt["45"] = {
        "class_type": "SaveImage",
        "inputs": {"images": ["44", 0], "filename_prefix": "facecontrol/core_direct"},
    }
    return prompt


def test_faces_survive_a_trip_through_core_face_landmarks(comfy):
    entry = comfy.run(_faces_round_trip(), timeout=300)
    through_core, direct = saved_image(comfy, entry, "43"), saved_image(comfy, entry, "45")
    assert np.array_equal(through_core, direct), "the face drawn after the round trip differs from the detected one"


def test_core_face_mask_node_reads_our_faces(comfy):
    info = comfy.get_json("/object_info")
    if "MediaPipeFaceMask" not in info:
        pytest.skip("this ComfyUI has no core MediaPipe nodes (they arrived in ComfyUI 0.23)")
    prompt = _faces_round_trip()
    prompt["46"] = {"class_type": "MediaPipeFaceMask", "inputs": {"face_landmarks": ["40", 0], "regions": "all"}}
    prompt["47"] = {"class_type": "MaskToImage", "inputs": {"mask": ["46", 0]}}
    prompt["48"] = {
        "class_type": "SaveImage",
        "inputs": {"images": ["47", 0], "filename_prefix": "facecontrol/core_mask"},
    }
    prompt["50"] = {
        "class_type": "SaveImage",
        "inputs": {"images": ["1", 0], "filename_prefix": "facecontrol/core_photo"},
    }
    entry = comfy.run(prompt, timeout=300)
    mask = saved_image(comfy, entry, "48")[..., 0] > 127
    drawn = (
        np.abs(saved_image(comfy, entry, "45").astype(int) - saved_image(comfy, entry, "50").astype(int)).sum(-1) > 0
    )
    ys, xs = np.nonzero(mask)
    drawn_ys, drawn_xs = np.nonzero(drawn)
    assert 0.002 < mask.mean() < 0.2, f"core's mask covers {mask.mean():.1%} of the photo"
    # core's mask lies on the face our preview marked (the third from the left of t1.jpg)
    assert abs(xs.mean() - drawn_xs.mean()) < 25 and abs(ys.mean() - drawn_ys.mean()) < 25, (
        f"core's mask centre ({xs.mean():.0f}, {ys.mean():.0f}), "
        f"our face ({drawn_xs.mean():.0f}, {drawn_ys.mean():.0f})"
    )
