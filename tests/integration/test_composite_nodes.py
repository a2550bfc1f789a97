"""Each composite node (Face-Adapter Reenact, DVA Edit Video, PIE Edit Portrait) gives exactly what its modular
example workflow gives on the same inputs, in a real ComfyUI server on the filled test weights: the composite
is that workflow expanded at run time (V3 node expansion), never a second implementation.

Step counts are lowered alike on both sides (Face-Adapter FAST_STEPS Euler steps) to stay inside CI's time.
"Exactly" is up to SaveImage's truncation to uint8: CPU float sums can differ in the last bit between two runs,
which moves a pixel sitting on a level boundary by one level (measured: Face-Adapter 7 of 262144 pixels of the
photo and 31 of the crop, by 1 level). A second implementation, or any wiring difference, changes far more.
"""

from __future__ import annotations

import numpy as np
import pytest
from comfy_test_utils import outputs_of, png, timed_run

from comfy_client import load_workflow

pytestmark = pytest.mark.integration
FAST_STEPS = 3
MAX_LEVELS, MAX_CHANGED = 1, 1e-3  # one level, on at most 0.1 % of the pixels


def saved_images(comfy, entry: dict, node_id: str) -> list[np.ndarray]:
    return [png(comfy.view(item)) for item in outputs_of(comfy, entry, node_id)]


def save(node: str, slot: int, prefix: str) -> dict:
    return {"class_type": "SaveImage", "inputs": {"images": [node, slot], "filename_prefix": f"facecontrol/{prefix}"}}


def assert_same_images(comfy, modular: dict, composite: dict, pairs: list[tuple[str, str]]) -> None:
    for modular_node, composite_node in pairs:
        want, got = saved_images(comfy, modular, modular_node), saved_images(comfy, composite, composite_node)
        assert len(want) == len(got), f"{len(got)} images from the composite, {len(want)} from the workflow"
        for a, b in zip(want, got):
            assert a.shape == b.shape, (
                f"node {modular_node} vs composite output {composite_node}: {a.shape} != {b.shape}"
            )
            diff = np.abs(a.astype(int) - b.astype(int)).max(-1)
            changed = float((diff > 0).mean())
            assert diff.max() <= MAX_LEVELS and changed <= MAX_CHANGED, (
                f"node {modular_node} vs composite output {composite_node}: up to {diff.max()} levels on "
                f"{changed:.3%} of the pixels"
            )


def test_face_adapter_reenact_equals_the_reenactment_workflow(comfy):
    modular = load_workflow("face_adapter_reenactment")
    modular["4"]["inputs"]["select"] = "largest"  # the composite drives by each photo's largest face
    modular["28"]["inputs"].update(steps=FAST_STEPS, seed=7)
    composite = {
        "1": modular["1"],
        "2": modular["2"],
        "20": modular["20"],
        "21": modular["21"],
        "40": {
            "class_type": "FaceControlFaceAdapterReenact",
            "inputs": {
                "source_image": ["1", 0],
                "driver_image": ["2", 0],
                "model": ["20", 0],
                "clip": ["20", 1],
                "vae": ["21", 0],
                "seed": 7,
                "steps": FAST_STEPS,
            },
        },
        "41": save("40", 0, "reenact_composite"),
        "42": save("40", 1, "reenact_composite_crop"),
    }
    want = timed_run(comfy, modular, "face_adapter_reenactment (modular)")
    got = timed_run(comfy, composite, "Face-Adapter Reenact (composite)")
    assert_same_images(comfy, want, got, [("32", "41"), ("33", "42")])


def test_dva_edit_video_equals_the_dva_workflow(comfy):
    modular = load_workflow("dva_video_edit")
    modular["8"]["inputs"].update(attribute="Smiling", scale=0.4)
    composite = {
        "1": modular["1"],
        "2": modular["2"],
        "3": modular["3"],
        "40": {
            "class_type": "FaceControlDVAEditVideo",
            "inputs": {
                "frames": ["3", 0],
                "attribute": "Smiling",
                "scale": 0.4,
                "steps": modular["7"]["inputs"]["steps"],
            },
        },
        "41": save("40", 0, "dva_composite"),
        "42": save("40", 1, "dva_composite_crops"),
    }
    modular["43"] = save("10", 0, "dva_modular_frames")
    want = timed_run(comfy, modular, "dva_video_edit (modular)")
    got = timed_run(comfy, composite, "DVA Edit Video (composite)")
    assert_same_images(comfy, want, got, [("43", "41"), ("13", "42")])


def test_pie_edit_portrait_equals_the_pie_workflow(comfy):
    modular = load_workflow("pie_portrait_edit")
    edits = {"yaw": -10.0, "smile": 0.5}
    modular["7"]["inputs"].update(edits)
    sliders = {
        k: modular["7"]["inputs"][k]
        for k in (
            "yaw",
            "pitch",
            "roll",
            "smile",
            "jaw_open",
            "blink",
            "brows_up",
            "light_intensity",
            "light_from_top",
            "light_from_right",
            "light_from_front",
        )
    }
    composite = {
        "1": modular["1"],
        "40": {"class_type": "FaceControlPIEEditPortrait", "inputs": {"image": ["1", 0], **sliders}},
        "41": save("40", 0, "pie_composite"),
        "42": save("40", 1, "pie_composite_crop"),
    }
    want = timed_run(comfy, modular, "pie_portrait_edit (modular)")
    got = timed_run(comfy, composite, "PIE Edit Portrait (composite)")
    assert_same_images(comfy, want, got, [("10", "41"), ("11", "42")])
