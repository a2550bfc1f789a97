"""DVA workflows in a real ComfyUI server with filled weights in the released layouts."""

from __future__ import annotations

import copy
import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from comfy_client import WorkflowError, load_workflow

pytestmark = pytest.mark.integration


def png(data: bytes) -> np.ndarray:
    return np.array(Image.open(io.BytesIO(data)))


def saved_images(comfy, entry, node_id) -> list[np.ndarray]:
    files = comfy.output_files(entry).get(node_id, [])
    assert files, f"node {node_id} saved nothing: {entry.get('outputs')}"
    return [png(comfy.view(item)) for item in files]


def with_probes(prompt: dict, frames: str, pasted: str, mask: str) -> dict:
    """Adds lossless saves of the input frames, the pasted frames and the frame-space paste mask."""
    prompt = copy.deepcopy(prompt)
    prompt["p1"] = {"class_type": "SaveImage", "inputs": {"images": [frames, 0], "filename_prefix": "probe/frames"}}
    prompt["p2"] = {"class_type": "SaveImage", "inputs": {"images": [pasted, 0], "filename_prefix": "probe/pasted"}}
    prompt["p3"] = {"class_type": "MaskToImage", "inputs": {"mask": [mask, 1]}}
    prompt["p4"] = {"class_type": "SaveImage", "inputs": {"images": ["p3", 0], "filename_prefix": "probe/mask"}}
    return prompt


def with_metrics(prompt: dict, original: str, result: str) -> dict:
    prompt["m1"] = {
        "class_type": "FaceControlVideoMetrics",
        "inputs": {"original": [original, 0], "result": [result, 0], "identity": "dlib"},
    }
    prompt["m2"] = {"class_type": "PreviewAny", "inputs": {"source": ["m1", 0]}}
    return prompt


def test_classifier_edit_workflow_changes_only_the_face(comfy):
    prompt = load_workflow("dva_video_edit")
    entry = comfy.run(with_metrics(with_probes(prompt, "3", "10", "10"), "5", "9"))
    report = json.dumps(entry["outputs"]["m2"])
    assert re.search(r"SSIM 0\.\d+.*MS-SSIM .*TL-ID \d\.\d+ TG-ID \d\.\d+ \(dlib\)", report), report
    frames = saved_images(comfy, entry, "p1")
    pasted = saved_images(comfy, entry, "p2")
    masks = saved_images(comfy, entry, "p4")
    crops = saved_images(comfy, entry, "13")
    n = prompt["3"]["inputs"]["length"]
    assert len(frames) == len(pasted) == len(masks) == len(crops) == n
    assert comfy.output_files(entry).get("12"), "no video saved"
    for frame, out, mask, crop in zip(frames, pasted, masks, crops):
        assert out.shape == frame.shape == (144, 176, 3)
        assert crop.shape == (256, 256, 3)
        outside = mask[..., 0] == 0
        inside = mask[..., 0] > 128
        assert outside.any() and inside.any()
        # the 8-bit mask reads 0 where the paste weight is below 1/510: at most one level off there
        assert np.abs(out[outside].astype(int) - frame[outside]).max() <= 1
        assert (out[outside] == frame[outside]).mean() > 0.99
        assert np.abs(out[inside].astype(int) - frame[inside]).mean() > 1  # the face was regenerated


def test_decode_steps_follow_the_encoding_and_dpm_solver_runs(comfy):
    prompt = load_workflow("dva_video_edit")
    prompt["3"]["inputs"]["length"] = 1
    prompt["7"]["inputs"]["steps"] = 3  # no integer DDIM stride gives 3: evenly spaced
    prompt["7"]["inputs"]["solver"] = "dpm++2m"  # Decode follows it ("as encoded")
    entry = comfy.run(prompt)
    assert len(saved_images(comfy, entry, "13")) == 1


def test_wrong_crop_size_is_an_error_naming_the_input(comfy):
    prompt = load_workflow("dva_video_edit")
    prompt["3"]["inputs"]["length"] = 1
    prompt["5"]["inputs"]["size"] = 128
    with pytest.raises(WorkflowError) as err:
        comfy.run(prompt)
    assert re.search(r"'crops' are 128x128 .*256x256", str(err.value)), str(err.value)


def test_strict_ddim_rule_rejects_an_impossible_step_count(comfy):
    prompt = load_workflow("dva_video_edit")
    prompt["3"]["inputs"]["length"] = 1
    prompt["7"]["inputs"].update(steps=45, respacing="ddim")
    with pytest.raises(WorkflowError) as err:
        comfy.run(prompt)
    assert "'steps' = 45" in str(err.value)


def test_clip_edit_workflow_runs_and_keeps_the_background(comfy):
    prompt = load_workflow("dva_video_edit_clip")
    entry = comfy.run(with_probes(prompt, "3", "10", "10"))
    frames, pasted, masks = (saved_images(comfy, entry, n) for n in ("p1", "p2", "p4"))
    assert len(frames) == len(pasted) == prompt["3"]["inputs"]["length"]
    for frame, out, mask in zip(frames, pasted, masks):
        assert out.shape == frame.shape
        outside = mask[..., 0] == 0
        assert np.abs(out[outside].astype(int) - frame[outside]).max() <= 1


def test_empty_text_is_an_error(comfy):
    prompt = load_workflow("dva_video_edit_clip")
    prompt["8"]["inputs"]["target_text"] = "  "
    with pytest.raises(WorkflowError) as err:
        comfy.run(prompt)
    assert "'target_text' is empty" in str(err.value)


def test_stacked_edits_then_reset_decode_the_video_code(comfy):
    """Two attribute edits stack; DVA Reset Edit returns to the video's own code, so its decode equals
    a decode of the unedited latent; per-frame decoding runs beside them."""
    prompt = load_workflow("dva_video_edit")
    prompt["3"]["inputs"]["length"] = 1
    prompt["s1"] = {
        "class_type": "FaceControlDVAEditClassifier",
        "inputs": {"dva_latent": ["8", 0], "attribute": "Young", "scale": -0.3, "normalize": True},
    }
    prompt["s2"] = {"class_type": "FaceControlDVAResetEdit", "inputs": {"dva_latent": ["s1", 0]}}
    decode = lambda latent, identity: {
        "class_type": "FaceControlDVADecode",
        "inputs": {  # noqa: E731
            "dva_model": ["6", 0],
            "dva_latent": [latent, 0],
            "solver": "as encoded",
            "chunk_size": 0,
            "identity": identity,
        },
    }
    prompt["s3"] = decode("s2", "current (edit, else as encoded)")
    prompt["s4"] = decode("7", "current (edit, else as encoded)")
    prompt["s5"] = decode("s1", "per frame")
    for name in ("s3", "s4", "s5"):
        prompt[name + "o"] = {
            "class_type": "SaveImage",
            "inputs": {"images": [name, 0], "filename_prefix": f"probe/{name}"},
        }
    entry = comfy.run(prompt)
    reset, plain, per_frame = (saved_images(comfy, entry, n + "o")[0] for n in ("s3", "s4", "s5"))
    edited = saved_images(comfy, entry, "13")[0]
    assert np.array_equal(reset, plain)
    assert not np.array_equal(edited, plain)
    assert per_frame.shape == plain.shape
