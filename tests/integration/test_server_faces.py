"""The pack in a real ComfyUI server: loading, /object_info, the shipped face workflows, bad inputs."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from comfy_test_utils import outputs_of, png, server_decoded, timed_run
from PIL import Image

from comfy_client import WorkflowError, load_workflow
from media import load_rgb

pytestmark = pytest.mark.integration
log = logging.getLogger(__name__)
REPO_ROOT = Path(__file__).resolve().parents[2]


def pack_node_ids() -> set[str]:
    ids = set()
    for path in (REPO_ROOT / "nodes").glob("*.py"):
        ids |= set(re.findall(r'node_id="(FaceControl\w+)"', path.read_text()))
    return ids


def test_pack_loads_without_import_failure(comfy):
    text = comfy.log_text()
    assert re.search(r"seconds: .*custom_nodes[/\\]facecontrol", text), text[-3000:]
    assert not re.search(r"IMPORT FAILED\).*facecontrol", text)
    assert "Cannot import" not in "\n".join(l for l in text.splitlines() if "facecontrol" in l)
    assert "FaceControl: node module" not in text


def test_object_info_lists_every_node(comfy):
    info = comfy.get_json("/object_info")
    expected = pack_node_ids()
    assert {
        "FaceControlDetectFaces",
        "FaceControlAlignFaces",
        "FaceControlPasteBack",
        "FaceControlPreviewFaces",
    } <= expected
    missing = expected - set(info)
    assert not missing, f"not in /object_info: {missing}"
    for node_id in expected:
        assert info[node_id]["category"].startswith("FaceControl/")


def test_model_folders_are_registered_from_extra_model_paths(comfy, model_root):
    (model_root / "mediapipe" / "probe.task").write_bytes(b"x")
    # ComfyUI lists files of registered folders, including those from extra_model_paths.yaml
    listing = comfy.get_json("/models/mediapipe")
    assert "probe.task" in listing


def test_photo_workflow_crops_and_pastes_back_unchanged(comfy):
    entry = timed_run(comfy, load_workflow("face_photo_pipeline"), "face_photo_pipeline")
    original = load_rgb("astronaut.png").astype(np.float64)
    pasted = png(comfy.view(outputs_of(comfy, entry, "5")[0])).astype(np.float64)
    crop = png(comfy.view(outputs_of(comfy, entry, "8")[0]))
    preview = png(comfy.view(outputs_of(comfy, entry, "7")[0]))
    assert pasted.shape == original.shape and preview.shape == original.shape and crop.shape == (256, 256, 3)
    # a crop pasted back unchanged reproduces the photo (resampling twice costs a little)
    mse = np.mean((pasted - original) ** 2)
    psnr = 10 * np.log10(255.0**2 / max(mse, 1e-12))
    log.info("photo paste-back of the unchanged crop: PSNR %.1f dB", psnr)
    assert psnr > 40
    assert (preview != original.astype(np.uint8)).any()


def test_group_workflow_selects_the_third_face_from_the_left(comfy):
    entry = timed_run(comfy, load_workflow("face_group_select"), "face_group_select")
    preview = png(comfy.view(outputs_of(comfy, entry, "4")[0]))
    original = server_decoded(comfy, "t1.jpg")
    assert preview.shape == original.shape
    changed = np.argwhere((preview.astype(int) - original).any(-1))
    cx = changed[:, 1].mean()
    # six faces at x about 113, 324, 521, 796, 963, 1183: the third from the left is near 521
    assert 420 < cx < 620, cx
    assert png(comfy.view(outputs_of(comfy, entry, "6")[0])).shape == (512, 512, 3)
    assert png(comfy.view(outputs_of(comfy, entry, "8")[0])).shape == (256, 256, 3)


def decode_video(data: bytes, tmp_path: Path) -> np.ndarray:
    path = tmp_path / "out.mp4"
    path.write_bytes(data)
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    return np.stack(frames)


def test_video_workflow_keeps_frame_count_and_size(comfy, tmp_path):
    entry = timed_run(comfy, load_workflow("face_video_pipeline"), "face_video_pipeline")
    video = decode_video(comfy.view(outputs_of(comfy, entry, "7")[0]), tmp_path)
    assert video.shape == (120, 144, 176, 3)
    crops = outputs_of(comfy, entry, "11")
    assert len(crops) == 120


# ---------------------------------------------------------------- bad inputs


def _expect_execution_error(comfy, prompt, pattern):
    with pytest.raises(WorkflowError) as err:
        comfy.run(prompt)
    assert re.search(pattern, str(err.value)), str(err.value)
    return str(err.value)


def _still_serving(comfy):
    entry = comfy.run(load_workflow("face_group_select"))
    assert comfy.output_files(entry)


def test_no_face_is_an_error_naming_the_frame(comfy):
    blank = np.full((256, 256, 3), 128, np.uint8)
    Image.fromarray(blank).save(comfy.input_dir / "blank.png")
    prompt = load_workflow("face_photo_pipeline")
    prompt["1"]["inputs"]["image"] = "blank.png"
    _expect_execution_error(comfy, prompt, r"no face found in frame 0 of 'image'")
    _still_serving(comfy)


def test_face_index_beyond_the_faces_found_says_how_many(comfy):
    prompt = load_workflow("face_group_select")
    prompt["2"]["inputs"]["index"] = 7
    _expect_execution_error(comfy, prompt, r"index 7 of 6 faces found in frame 0 of 'image'.*use 0 to 5")
    _still_serving(comfy)


def test_negative_face_index_from_a_link_is_refused(comfy):
    """A linked value skips the widget's min=0: -1 used to take the last face silently."""
    prompt = load_workflow("face_group_select")
    prompt["20"] = {"class_type": "PrimitiveInt", "inputs": {"value": -1}}
    prompt["2"]["inputs"]["index"] = ["20", 0]
    _expect_execution_error(comfy, prompt, r"index.*-1")
    _still_serving(comfy)


def test_rgba_input_is_an_error(comfy):
    prompt = load_workflow("face_photo_pipeline")
    prompt["20"] = {"class_type": "JoinImageWithAlpha", "inputs": {"image": ["1", 0], "alpha": ["1", 1]}}
    prompt["2"]["inputs"]["image"] = ["20", 0]
    _expect_execution_error(comfy, prompt, r"'image' is RGBA \(4 channels\)")
    _still_serving(comfy)


def test_mismatched_batch_sizes_are_an_error(comfy):
    prompt = load_workflow("face_photo_pipeline")
    prompt["20"] = {"class_type": "RepeatImageBatch", "inputs": {"image": ["1", 0], "amount": 3}}
    prompt["21"] = {"class_type": "RepeatImageBatch", "inputs": {"image": ["1", 0], "amount": 2}}
    prompt["2"]["inputs"]["image"] = ["21", 0]
    prompt["3"]["inputs"]["image"] = ["21", 0]
    prompt["4"]["inputs"]["image"] = ["20", 0]
    del prompt["6"], prompt["7"]  # the preview would stop first, on its own mismatch
    _expect_execution_error(comfy, prompt, r"'crops' has 2 items but 'image' has 3")
    _still_serving(comfy)


def test_missing_model_file_names_every_path_searched(comfy, model_root):
    prompt = load_workflow("face_group_select")
    prompt["2"]["inputs"]["backend"] = "insightface-scrfd"
    message = _expect_execution_error(comfy, prompt, r"scrfd_10g_bnkps\.onnx")
    assert str(model_root / "insightface") in message  # the folder given through extra_model_paths.yaml
    assert "antelopev2" in message and "non-commercial" in message.lower()
    _still_serving(comfy)


def test_missing_input_is_a_400_with_node_errors(comfy):
    prompt = load_workflow("face_photo_pipeline")
    prompt = {k: prompt[k] for k in ("1", "3", "8")}  # align and save only, with no faces wired in
    del prompt["3"]["inputs"]["faces"]
    with pytest.raises(WorkflowError) as err:
        comfy.queue(prompt)
    body = err.value.details
    assert "3" in body.get("node_errors", {}), body
    assert "faces" in json.dumps(body["node_errors"]["3"])
    _still_serving(comfy)
