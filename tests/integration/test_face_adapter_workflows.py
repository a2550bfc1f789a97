"""The Face-Adapter workflows end to end in a real ComfyUI server on CPU, on the real photos and carphone frames.

Weights are the filled test weights in the released layouts (tests/filled_weights/face_adapter.py and spatial.py):
ComfyUI's own CheckpointLoaderSimple and VAELoader read an SD1.5-shaped checkpoint, the pack's loader reads the
Face-Adapter bundle. The reenactment test runs the shipped workflow as it is (the paper's 25 Euler steps at 512x512). The swap and
video tests check their wiring with FAST_STEPS steps to keep CI inside its limit; the browser test queues all
three UI workflows with their shipped 25 steps. Measured on the shared 2-core machine (load average 5-7), the
whole file 462 s: reenactment 206 s, swap 46 s, swap with the paper's negative 49 s, the 2-frame video 66 s,
each 16-frame control-image run 12 s (times are logged per workflow).
"""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest
from comfy_test_utils import outputs_of, png, saved_image, server_decoded, timed_run

from comfy_client import WorkflowError, load_workflow
from media import load_rgb

pytestmark = pytest.mark.integration
log = logging.getLogger(__name__)
FAST_STEPS = 4


def fast(name: str) -> dict:
    prompt = load_workflow(name)
    assert prompt["28"]["inputs"]["steps"] == 25, "the shipped workflows keep the paper's 25 steps"
    prompt["28"]["inputs"]["steps"] = FAST_STEPS
    return prompt


def crop_region(detector, rgb: np.ndarray, select: str, index: int) -> np.ndarray:
    """Where Face-Adapter's 512 crop of the chosen face lies in the photo (bool H,W)."""
    from facecontrol.face.align import faceadapter512_crop
    from facecontrol.face.select import Selection, detect_face_set

    faces = detect_face_set(rgb[None], detector, Selection(select, index, "left-right", (0.5, 0.5)), track=False)
    crop = faceadapter512_crop(faces.boxes(), faces.image_size)
    ones = np.ones((512, 512), np.float32)
    h, w = rgb.shape[:2]
    return cv2.warpAffine(ones, crop.inverse[0], (w, h), flags=cv2.INTER_LINEAR) > 0


def assert_changed_only_in(result: np.ndarray, original: np.ndarray, region: np.ndarray) -> None:
    assert result.shape == original.shape, f"{result.shape} != {original.shape}"
    diff = np.abs(result.astype(np.int16) - original.astype(np.int16)).max(-1)
    # SaveImage truncates floats to uint8, so an untouched pixel may read one level lower
    assert diff[~region].max() <= 1, "pixels outside the pasted face crop changed"
    assert diff[region].mean() > 2.0, "the face region is unchanged"


def test_reenactment_workflow(comfy, detector):
    entry = timed_run(comfy, load_workflow("face_adapter_reenactment"), "face_adapter_reenactment")
    original = load_rgb("astronaut.png")
    result = saved_image(comfy, entry, "32")
    assert_changed_only_in(result, original, crop_region(detector, original, "largest", 0))
    crop, control = saved_image(comfy, entry, "33"), saved_image(comfy, entry, "34")
    assert crop.shape == control.shape == (512, 512, 3)


@pytest.fixture(scope="module")
def swap_entry(comfy):
    return timed_run(comfy, fast("face_adapter_swap"), f"face_adapter_swap, {FAST_STEPS} steps")


def test_swap_workflow(comfy, detector, swap_entry):
    entry = swap_entry
    original = server_decoded(comfy, "t1.jpg")
    result = saved_image(comfy, entry, "32")
    assert_changed_only_in(result, original, crop_region(detector, original, "index", 3))


def test_swap_with_the_papers_negative(comfy, swap_entry):
    prompt = fast("face_adapter_swap")
    prompt["24"]["inputs"]["negative"] = "target identity (paper, swap)"
    paper = saved_image(comfy, timed_run(comfy, prompt, "swap, paper's negative"), "33")
    released = saved_image(comfy, swap_entry, "33")
    assert np.abs(paper.astype(np.int16) - released.astype(np.int16)).mean() > 0.5


def test_video_workflow(comfy, detector):
    prompt = fast("face_adapter_reenact_video")
    frames = prompt["2"]["inputs"]["length"]
    entry = timed_run(comfy, prompt, f"face_adapter_reenact_video ({frames} frames)")
    original = load_rgb("astronaut.png")
    results = [png(comfy.view(item)) for item in outputs_of(comfy, entry, "32")]
    assert len(results) == frames
    region = crop_region(detector, original, "largest", 0)
    for result in results:
        assert_changed_only_in(result, original, region)
    # the same noise for every frame: the frames differ only through their control images
    crops = [png(comfy.view(item)) for item in outputs_of(comfy, entry, "33")]
    assert len(crops) == frames


def control_flicker(comfy, smooth: bool, frames: int, backend: str = "auto") -> float:
    """Mean frame-to-frame change (0..255) of the video's control images, with or without the temporal
    smoothing (the driver's 512 crops and its 3DMM coefficients)."""
    import torch

    from facecontrol.pipelines.face_adapter import flicker

    prompt = load_workflow("face_adapter_reenact_video")
    prompt["2"]["inputs"]["length"] = frames
    for node in ("8", "9"):
        assert prompt[node]["class_type"] == "FaceControlFit3DMM"
        prompt[node]["inputs"]["backend"] = backend
    assert prompt["6"]["inputs"]["smooth"] and prompt["9"]["inputs"]["smooth_sigma"] > 0
    if not smooth:
        prompt["6"]["inputs"]["smooth"] = False
        prompt["9"]["inputs"]["smooth_sigma"] = 0.0
    spatial_only = {k: v for k, v in prompt.items() if int(k) < 20 or k in ("40", "41")}
    spatial_only["50"] = {
        "class_type": "SaveImage",
        "inputs": {"images": ["13", 0], "filename_prefix": "facecontrol/fa_flicker"},
    }
    entry = timed_run(comfy, spatial_only, f"control images, {frames} frames, smoothing {smooth}")
    images = np.stack([png(comfy.view(item)) for item in outputs_of(comfy, entry, "50")])
    return flicker(torch.from_numpy(images).float() / 255.0)


@pytest.mark.parametrize("backend", ["ict_facekit", "bfm_d3dfr"])
def test_smoothing_reduces_control_flicker(comfy, backend):
    """On both 3DMM backends (bfm_d3dfr with the filled regressor: its numbers show the crop and canvas jitter,
    not the real regressor's)."""
    raw, smooth = control_flicker(comfy, False, 16, backend), control_flicker(comfy, True, 16, backend)
    log.info(
        "%s control-image flicker over 16 carphone frames: %.3f without smoothing, %.3f with it", backend, raw, smooth
    )
    print(f"{backend} control-image flicker (mean |frame t+1 - frame t|, 0..255): raw {raw:.3f}, smoothed {smooth:.3f}")
    assert smooth < raw


def test_missing_bundle_file_is_named(comfy, model_root):
    path = model_root / "face_adapter" / "net_image2token.pth"
    moved = path.with_suffix(".moved")
    path.rename(moved)
    try:
        prompt = fast("face_adapter_reenactment")
        with pytest.raises(WorkflowError, match=r"net_image2token\.pth not found"):
            comfy.run(prompt)
    finally:
        moved.rename(path)


def preview_texts(entry: dict, prompt: dict) -> dict[str, str]:
    """The Preview as Text outputs of a run, by the title of their node."""
    return {
        prompt[k]["_meta"]["title"]: entry["outputs"][k]["text"][0]
        for k, v in prompt.items()
        if v["class_type"] == "PreviewAny"
    }


def test_release_files_run_the_authors_path_and_the_nodes_say_so(comfy, model_root):
    """With the authors' files present (filled, released layouts: d3dfr + BFM, seg UNet, BiSeNet, pretrained_unet/)
    the shipped reenactment and swap workflows run them, read from the nodes' outputs; with them gone the open path
    runs and says so. No SCRFD test file exists (an ONNX SCRFD cannot be filled), so the detector reads mediapipe."""
    import shutil

    from filled_weights.face_adapter import diffusers_unet

    unet_dir = model_root / "face_adapter" / "pretrained_unet"
    diffusers_unet().save_pretrained(unet_dir, safe_serialization=True)
    try:
        for name, mask in (
            ("face_adapter_reenactment", "seg UNet, net_seg_res18.pth"),
            ("face_adapter_swap", "BiSeNet, 79999_iter.pth"),
        ):
            prompt = fast(name)
            texts = preview_texts(timed_run(comfy, prompt, f"{name}, authors' files"), prompt)
            log.info("%s: %s", name, texts)
            assert texts["Which 3DMM ran"] == "bfm_d3dfr"
            assert mask in texts["Which mask ran"] and texts["Which mask ran"].startswith("network")
            assert texts["Which UNet ran"].startswith("release pretrained_unet")
            assert texts["Which detector ran (driver/target)"].startswith("mediapipe")
    finally:
        shutil.rmtree(unet_dir)

    third_party = model_root / "face_adapter" / "third_party"
    files = [
        third_party / "d3dfr_res50_nofc.pth",
        third_party / "79999_iter.pth",
        model_root / "face_adapter" / "net_seg_res18.pth",
    ]
    for path in files:
        path.rename(path.with_suffix(".moved"))
    try:
        prompt = fast("face_adapter_reenactment")
        texts = preview_texts(timed_run(comfy, prompt, "reenactment, open path"), prompt)
        log.info("open path: %s", texts)
        assert texts["Which 3DMM ran"] == "ict_facekit"
        assert texts["Which mask ran"].startswith("geometric")
        assert texts["Which UNet ran"] == "checkpoint's UNet (pretrained_unet/ not found)"
    finally:
        for path in files:
            path.with_suffix(".moved").rename(path)
