"""The Spatial Condition Generator workflow in a real ComfyUI server: open backend + geometric mask (no
downloaded weights), Face-Adapter's BFM backend and networks (filled weights in the released layouts), and
the errors a user sees when wiring it wrong."""

from __future__ import annotations

import numpy as np
import pytest
from comfy_test_utils import saved_image, timed_run

from comfy_client import WorkflowError, load_workflow

pytestmark = pytest.mark.integration
WORKFLOW = "face_adapter_spatial_condition"


def test_spatial_condition_workflow_open_backend(comfy):
    entry = timed_run(comfy, load_workflow(WORKFLOW), "spatial condition, ICT + geometric")
    control, landmarks, mask = (saved_image(comfy, entry, n) for n in ("13", "14", "16"))
    assert control.shape == landmarks.shape == mask.shape == (512, 512, 3)
    inside = mask[..., 0] > 127
    assert 0.08 < inside.mean() < 0.7, f"mask covers {inside.mean():.2%} of the crop"
    # Inside the mask the control image is the landmark drawing, outside it is the source crop.
    assert np.array_equal(control[inside], landmarks[inside])
    assert control[~inside].mean() > 40, "outside the mask the source crop shows"
    dots = landmarks.max(-1) > 0
    assert dots[~inside].sum() < 0.05 * dots.sum(), "the landmarks lie inside the adapting area"
    # 70 dots of radius 2 on the 256 canvas, warped about x2 into the 512 crop
    assert 70 * 15 < dots.sum() < 70 * 120


def test_spatial_condition_bfm_backend_and_networks(comfy):
    """Face-Adapter's own path on filled weights: d3dfr + BFM, the adapting-area UNet, BiSeNet for swapping."""
    prompt = load_workflow(WORKFLOW)
    for node in ("7", "8"):
        prompt[node]["inputs"]["backend"] = "bfm_d3dfr"
    prompt["11"]["inputs"]["method"] = "network"
    entry = timed_run(comfy, prompt, "spatial condition, BFM + seg UNet")
    mask = saved_image(comfy, entry, "16")
    assert set(np.unique(mask[..., 0])) <= {0, 255}, "the UNet mask is thresholded at 0.5"

    prompt["11"]["inputs"]["mode"] = "swap"
    entry = timed_run(comfy, prompt, "spatial condition, BFM + BiSeNet swap mask")
    assert saved_image(comfy, entry, "13").shape == (512, 512, 3)


def test_crop_of_the_wrong_photo_is_named(comfy):
    prompt = load_workflow(WORKFLOW)
    prompt["10"]["inputs"]["crop"] = ["5", 1]  # the source's crop, but the pose is the driver's
    with pytest.raises(WorkflowError, match="use the crop of the frames the pose comes from"):
        comfy.run(prompt)


def test_mixed_backends_are_refused(comfy):
    prompt = load_workflow(WORKFLOW)
    prompt["8"]["inputs"]["backend"] = "bfm_d3dfr"
    with pytest.raises(WorkflowError, match="same backend"):
        comfy.run(prompt)


def test_geometric_mask_without_base_faces_is_named(comfy):
    prompt = load_workflow(WORKFLOW)
    del prompt["11"]["inputs"]["base_faces"]
    with pytest.raises(WorkflowError, match="'base_faces' and 'base_crop'"):
        comfy.run(prompt)
