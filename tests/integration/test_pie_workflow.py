"""PIE in a real ComfyUI server: the shipped pie_portrait_edit workflow (test weights: the 64 px generator of
tests/filled_weights/pie.py, filled landmark and VGG weights, an untrained RigNet) and bad inputs.

The yaw check uses direct mode (no trained RigNet exists in CI): the regressor of the edited face, run here on
the saved PNGs with the same landmark network and ICT model files, must see the head turned the way the
+15 degree slider asks (positive yaw: nose towards image right). The same check runs with the BFM face model
(Deep3DFaceRecon's regressor in the epoch_20.pth layout and a BFM_model_front.mat of the test weights).
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from comfy_test_utils import saved_image, timed_run

from comfy_client import WorkflowError, load_workflow
from media import load_rgb

pytestmark = pytest.mark.integration


def _formation(model_root):
    from facecontrol.face.ict_model import load_ict_model
    from facecontrol.models.dva_face_encoder import load_landmark_net
    from facecontrol.pipelines import pie

    from filled_weights import pie as weights

    net = load_landmark_net(model_root / weights.LANDMARK_FILE)
    model = load_ict_model(model_root / weights.ICT_FILE)
    return pie.ICTFaceFormation(model, net).eval().requires_grad_(False)


def _bfm_formation(model_root):
    from facecontrol.face.bfm import BFMProjector
    from facecontrol.models.d3dfr import load_deep3dfacerecon
    from facecontrol.pipelines.pie.bfm import BFMFaceFormation

    from filled_weights import pie as weights

    landmark_net = _formation(model_root).landmark_net
    regressor = load_deep3dfacerecon(model_root / weights.D3DFR_FILE)
    return BFMFaceFormation(BFMProjector(model_root / weights.BFM_FILE), regressor, landmark_net).eval()


def _regressed_yaw(formation, rgb: np.ndarray, size: int) -> float:
    image = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 127.5 - 1
    image = F.interpolate(image, size=(size, size), mode="area")
    with torch.no_grad():
        return float(formation.regress(image)["angles"][0, 0])


@pytest.fixture(scope="module")
def pie_run(comfy):
    return timed_run(comfy, load_workflow("pie_portrait_edit"), "pie_portrait_edit")


def test_workflow_pastes_an_edited_face_into_the_photo(comfy, pie_run):
    photo = load_rgb("astronaut.png")
    pasted = saved_image(comfy, pie_run, "10")
    edited = saved_image(comfy, pie_run, "11")
    reconstruction = saved_image(comfy, pie_run, "12")
    assert pasted.shape == photo.shape
    assert edited.shape == reconstruction.shape == (256, 256, 3)
    changed = np.abs(pasted.astype(int) - photo.astype(int)).max(-1) > 8
    assert 0.02 < changed.mean() < 0.6, "the edit should change the face region and leave the rest"
    assert np.abs(edited.astype(int) - reconstruction.astype(int)).mean() > 1.0


def test_yaw_plus_15_turns_the_regressed_head_to_image_right(comfy, pie_run, model_root):
    formation = _formation(model_root)
    before = _regressed_yaw(formation, saved_image(comfy, pie_run, "12"), 64)
    after = _regressed_yaw(formation, saved_image(comfy, pie_run, "11"), 64)
    assert after - before > math.radians(1.0), (
        f"regressed yaw {math.degrees(before):.2f} -> {math.degrees(after):.2f} deg"
    )


def test_rignet_mode_without_rignet_and_reference_without_image_are_clear_errors(comfy):
    prompt = copy.deepcopy(load_workflow("pie_portrait_edit"))
    prompt["13"]["inputs"].update(steps_w=1, steps_wplus=0)
    prompt["7"]["inputs"]["mode"] = "rignet"
    with pytest.raises(WorkflowError, match="no 'rignet' is connected"):
        comfy.run(prompt)
    prompt["7"]["inputs"].update(mode="direct", reference_groups="expression")
    with pytest.raises(WorkflowError, match="no 'reference' image"):
        comfy.run(prompt)


RIGNET_NODE = {"class_type": "FaceControlLoadRigNet", "inputs": {"rignet": "ffhq_rignet.safetensors"}}


def _with_rignet(prompt: dict) -> dict:
    """The shipped workflow has no RigNet (none can be downloaded); tests that need one add the loader as node 5."""
    prompt["5"] = copy.deepcopy(RIGNET_NODE)
    return prompt


def test_the_shipped_workflow_runs_without_a_rignet_and_says_how_to_train_one(comfy, pie_run):
    prompt = load_workflow("pie_portrait_edit")
    assert all(node["class_type"] != "FaceControlLoadRigNet" for node in prompt.values())
    assert prompt["7"]["inputs"]["mode"] == "auto"
    log = comfy.log_text()
    assert "mode direct" in log and "auto: no RigNet loaded" in log and "scripts/train_rignet.py" in log


def test_rignet_mode_applies_the_loaded_rignet(comfy):
    prompt = _with_rignet(copy.deepcopy(load_workflow("pie_portrait_edit")))
    prompt["13"]["inputs"].update(steps_w=1, steps_wplus=1)
    prompt["7"]["inputs"].update(mode="rignet", rignet=["5", 0])
    entry = comfy.run(prompt)
    assert saved_image(comfy, entry, "11").shape == (256, 256, 3)


def _bfm_prompt() -> dict:
    prompt = copy.deepcopy(load_workflow("pie_portrait_edit"))
    prompt["6"]["inputs"]["face_model"] = "bfm_deep3dfacerecon"
    prompt["6"]["inputs"].pop("rignet", None)  # the test RigNet was made for the ICT model's 53 expressions
    return prompt


def test_bfm_face_model_edit_turns_the_regressed_head_to_image_right(comfy, model_root):
    entry = comfy.run(_bfm_prompt())
    formation = _bfm_formation(model_root)
    before = _regressed_yaw(formation, saved_image(comfy, entry, "12"), 64)
    after = _regressed_yaw(formation, saved_image(comfy, entry, "11"), 64)
    assert after - before > math.radians(1.0), (
        f"regressed yaw {math.degrees(before):.2f} -> {math.degrees(after):.2f} deg"
    )
    assert saved_image(comfy, entry, "10").shape == load_rgb("astronaut.png").shape


def test_rignet_of_another_face_model_and_named_sliders_on_the_bfm_are_clear_errors(comfy):
    prompt = _bfm_prompt()
    _with_rignet(prompt)
    prompt["13"]["inputs"].update(steps_w=1, steps_wplus=0)
    prompt["6"]["inputs"]["rignet"] = ["5", 0]
    with pytest.raises(WorkflowError, match="train a RigNet for this face model"):
        comfy.run(prompt)
    prompt = _bfm_prompt()
    prompt["13"]["inputs"].update(steps_w=1, steps_wplus=0)
    prompt["7"]["inputs"].update(yaw=0.0, smile=0.5)
    with pytest.raises(WorkflowError, match="'smile'.*reference face"):
        comfy.run(prompt)
