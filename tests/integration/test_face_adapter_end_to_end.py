"""End to end: the shipped reenactment and swap workflows, set to the authors' path, give the blended 512 crop
that a plain PyTorch + diffusers transcription of the authors' infer.py order gives (tests/fa_authors_order.py),
from the same two real photos (astronaut as source, t1.jpg as driver/target) and the same filled weights in the
released layouts (tests/filled_weights/face_adapter.py, spatial.py, and a filled pretrained_unet/).

Both sides run: the authors' crop chain (frame -> 512, the five points again on the crop, -> 256), d3dfr and the
BFM, the recombination (the source's identity coefficients into the driver's), the 70-point drawing, the seg UNet
(reenactment) or BiSeNet (swap) mask, the control image, ID2Token and Image2Token tokens, 2 Euler steps at CFG 5
from torch.manual_seed(0) noise, the VAE decode and the blend. SCRFD cannot be filled (ONNX), so both sides take
the box and the five points from the same open detector, mediapipe, with the authors' face key.

Tolerance, in 0..255 levels of the saved crop: the authors round the generated image to uint8 before blending
and round the blend (x*127.5 + 128, truncated); ComfyUI blends in float and SaveImage truncates, so an equal
computation differs by up to 1 level per pixel from those roundings alone (measured: max 1, mean 0.26
reenactment / 0.21 swap). The limits, max 2 and mean 0.35, leave room for float32 order-of-operation noise on
another CPU; the control image must agree within 1 level except on under 0.1% of pixels (the filled seg UNet has
33 probabilities within 1e-6 of its 0.5 threshold). Before two float32 details of the authors' crop geometry were
matched (face/align.py faceadapter_box_corners, nodes/face_nodes.py chain_256_crops) the crop differed by up
to 9 levels, so the limits see a single resampled level in the 256 crop.

One difference is intended and measured, not hidden: ComfyUI's KSampler scales the initial noise by
sqrt(1 + sigma_max^2), the authors' diffusers Euler by sigma_max; the comparison runs the transcription with
ComfyUI's scale and logs the authors' (mean 0.76 / 0.74 levels, docs/FACE_ADAPTER.md). The recombination is seen
through the control image and the crop (without it control pixels move and the crop leaves the limits).
With 2 steps both samplers' timesteps are
999 and 0, so the fractional timesteps of longer schedules are not covered here (test_face_adapter_comfy_step.py).
"""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest
import torch
from comfy_test_utils import saved_image, server_decoded, timed_run

from comfy_client import load_workflow
from media import load_rgb

pytestmark = [pytest.mark.integration, pytest.mark.slow]
log = logging.getLogger(__name__)
STEPS = 2
MAX_LEVELS = 2
MEAN_LEVELS = 0.35
MAX_CONTROL_FLIPS = 1e-3
AUTHORS_CHAIN = "authors (512, re-detect, 256)"  # nodes/face_nodes.py CHAINS; the server refuses any other


@pytest.fixture(scope="module")
def release_unet(model_root):
    from filled_weights.face_adapter import diffusers_unet

    unet_dir = model_root / "face_adapter" / "pretrained_unet"
    diffusers_unet().save_pretrained(unet_dir, safe_serialization=True)
    yield unet_dir
    shutil.rmtree(unet_dir)


@pytest.fixture(scope="module")
def networks(model_root, release_unet):
    import fa_authors_order as authors

    from filled_weights.face_adapter import CKPT_NAME, VAE_NAME

    return authors.load_networks(model_root, model_root / "checkpoints" / CKPT_NAME, model_root / "vae" / VAE_NAME)


def authors_path_workflow(name: str) -> dict:
    """The shipped workflow with every choice on the authors' path (mediapipe standing in for SCRFD)."""
    from facecontrol.face.select import AUTHORS_LARGEST

    prompt = load_workflow(name)
    for node in ("3", "4"):
        prompt[node]["inputs"].update(backend="mediapipe", select=AUTHORS_LARGEST)
    for node in ("5", "6", "7"):
        assert prompt[node]["class_type"] == "FaceControlAlignFaces"
        prompt[node]["inputs"]["crop_chain"] = AUTHORS_CHAIN
    for node in ("8", "9"):
        prompt[node]["inputs"].update(backend="bfm_d3dfr", crop_chain=AUTHORS_CHAIN)
    prompt["12"]["inputs"]["method"] = "network"
    prompt["35"]["inputs"]["unet"] = "release pretrained_unet"
    sampler = prompt["28"]["inputs"]
    assert (sampler["sampler_name"], sampler["scheduler"], sampler["cfg"], sampler["seed"]) == (
        "euler",
        "normal",
        5.0,
        0,
    )
    sampler["steps"] = STEPS
    return prompt


def levels(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(np.int16) - b.astype(np.int16))


def control_uint8(control: torch.Tensor) -> np.ndarray:
    """The transcription's [-1,1] control image as SaveImage writes an IMAGE (x*255 truncated)."""
    return ((control[0].permute(1, 2, 0).numpy() + 1) / 2 * 255).clip(0, 255).astype(np.uint8)


@pytest.mark.parametrize("mode, workflow", [("reenactment", "face_adapter_reenactment"), ("swap", "face_adapter_swap")])
def test_graph_equals_the_authors_order(comfy, detector, networks, mode, workflow):
    import fa_authors_order as authors

    prompt = authors_path_workflow(workflow)
    entry = timed_run(comfy, prompt, f"{workflow}, authors' path, {STEPS} steps")
    texts = {prompt[k]["_meta"]["title"]: entry["outputs"][k]["text"][0] for k in ("37", "38", "39")}
    assert texts["Which 3DMM ran"] == "bfm_d3dfr"
    assert texts["Which mask ran"].startswith("network")
    assert texts["Which UNet ran"].startswith("release pretrained_unet")
    graph_crop, graph_control = saved_image(comfy, entry, "33"), saved_image(comfy, entry, "34")

    # the photos as the server's LoadImage decoded them: ComfyUI 0.33 decodes JPEG through PyAV, up to 24 levels
    # from PIL's decode of t1.jpg (comfy_test_utils.server_decoded), which moved the driver's landmarks and the
    # control image by hundreds of pixels there; 0.3.75 decodes with PIL, and both are the same to the level
    source, driver = server_decoded(comfy, "astronaut.png"), server_decoded(comfy, "t1.jpg")
    assert np.abs(source.astype(np.int16) - load_rgb("astronaut.png")).max() == 0  # a PNG decodes alike everywhere
    expected = authors.run(networks, detector, source, driver, mode, STEPS, noise_scale="comfyui")
    control_diff = levels(graph_control, control_uint8(expected.control)).max(-1)
    diff = levels(graph_crop, expected.blended)
    authors_noise = levels(graph_crop, authors.run(networks, detector, source, driver, mode, STEPS).blended)
    log.info(
        "%s: control image: %d pixels over 1 level (max %d); blended crop: max %d, mean %.4f levels, %.2f%% of "
        "pixels over 1 level; with the authors' initial noise scale: max %d, mean %.4f",
        mode,
        (control_diff > 1).sum(),
        control_diff.max(),
        diff.max(),
        diff.mean(),
        100 * (diff.max(-1) > 1).mean(),
        authors_noise.max(),
        authors_noise.mean(),
    )
    assert (control_diff > 1).mean() < MAX_CONTROL_FLIPS
    assert diff.max() <= MAX_LEVELS and diff.mean() <= MEAN_LEVELS
    # ComfyUI's KSampler starts from noise * sqrt(1 + sigma_max^2), the authors' diffusers Euler from
    # noise * sigma_max: the one sampler difference (docs/FACE_ADAPTER.md), measured here
    assert authors_noise.mean() > 2 * diff.mean()

    # the control image sees the recombination: drawn with the driver's own identity coefficients it differs
    wrong = authors.run(networks, detector, source, driver, mode, STEPS, recombine=False, noise_scale="comfyui")
    moved = levels(graph_control, control_uint8(wrong.control)).max(-1)
    wrong_crop = levels(graph_crop, wrong.blended)
    log.info(
        "%s: without the recombination %d control pixels move by over 1 level, the blended crop by up to %d",
        mode,
        (moved > 1).sum(),
        wrong_crop.max(),
    )
    # the limits above would catch a missing recombination: its control pixels stand out from the equal run's
    # (0 on both ComfyUIs) and its crop is over the level limit. Not a fixed count of pixels: the swap's moved 88 on
    # ComfyUI 0.33's PyAV decode of t1.jpg
    assert (moved > 1).sum() > max(20, 10 * (control_diff > 1).sum())
    assert wrong_crop.max() > MAX_LEVELS
