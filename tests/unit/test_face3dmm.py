"""FACE_3DMM (face/face3dmm.py) and the adapting-area masks (face/adapting_mask.py).

The BFM path is checked against the authors' recorded outputs (fa_bfm, fa_draw_pts70); the open ICT path
on two real faces of t1.jpg.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facecontrol.face import adapting_mask
from facecontrol.face import face3dmm as f3
from facecontrol.face.align import faceadapter512_crop
from facecontrol.face.bfm import BFMProjector
from facecontrol.face.ict_fit import fit_landmarks, interocular_distance
from facecontrol.face.ict_model import load_ict_model
from facecontrol.face.select import Selection, detect_face_set
from facecontrol.face.types import apply_affine

from golden_fixtures import load_fixture
from media import load_rgb

FACE_ADAPTER = "expression, pose and gaze (Face-Adapter)"
POSE_TOLERANCE_DEG = 2.0


@pytest.fixture(scope="module")
def ict_model():
    from facecontrol import model_files

    return load_ict_model(model_files.resolve("face_3dmm/ict_facekit/landmarks_model.npz", {}))


@pytest.fixture(scope="module")
def two_t1_faces(detector):
    """The 1st and 4th face from the left of t1.jpg: different people, different head poses."""
    image = load_rgb("t1.jpg")[None]
    pick = lambda i: detect_face_set(
        image, detector, Selection("index", i, "left-right", (0.5, 0.5)), track=False, backend="mediapipe"
    )
    return pick(0), pick(3)


# ---------------------------------------------------------------- BFM backend against the authors


def _bfm_fixture():
    fx = load_fixture("fa_bfm")
    config = dict(fx.config)
    mat = fx.folder / config.pop("bfm_model_path").split()[0]
    return fx, BFMProjector(mat, **config)


def _bfm_fit(coeffs: torch.Tensor, projector, canvas: np.ndarray | None = None) -> f3.Face3DMM:
    canvas = np.tile(np.eye(2, 3), (len(coeffs), 1, 1)) if canvas is None else canvas
    return f3.bfm_from_regressor(coeffs, canvas, (512, 512), projector)


def test_bfm_recombination_and_landmarks_match_authors():
    fx, projector = _bfm_fixture()
    source = _bfm_fit(fx.inputs["in.coeff_src"], projector)
    driver = _bfm_fit(fx.inputs["in.coeff_drive"], projector)
    fx.check("lm68_src", source.landmarks())
    recombined = f3.recombine(source, driver, FACE_ADAPTER)
    fx.check("coeff_recombined", f3.bfm_vector(recombined.coeffs))
    fx.check("lm68_recombined", recombined.landmarks())


def test_bfm_control_image_matches_authors_drawing():
    """Canvas = the fixture's 512->256 matrices and the crop = the frame itself: the drawing must be the authors'."""
    fx_bfm, projector = _bfm_fixture()
    fx = load_fixture("fa_draw_pts70")
    warp = fx.inputs["in.warp_mat256"].double().numpy()
    source = _bfm_fit(fx_bfm.inputs["in.coeff_src"][:2], projector)
    driver = _bfm_fit(fx_bfm.inputs["in.coeff_drive"][:2], projector, canvas=warp)
    recombined = f3.recombine(source, driver, FACE_ADAPTER)
    identity_crop = np.tile(np.eye(2, 3), (2, 1, 1))
    images, points = f3.project_into_crop(recombined, identity_crop, 512, "faceadapter512")
    fx.check("pts70_uint8", torch.from_numpy(images))
    assert points.points.shape == (2, 70, 2)


# ---------------------------------------------------------------- open backend on two real faces


def test_recombined_landmarks_take_driver_pose_and_keep_source_shape(ict_model, two_t1_faces):
    source_faces, driver_faces = two_t1_faces
    source = f3.fit_ict(source_faces, ict_model, shared_identity=False)
    driver = f3.fit_ict(driver_faces, ict_model, shared_identity=False)
    source_pose, driver_pose = source.head_pose_degrees()[0], driver.head_pose_degrees()[0]
    assert np.abs(source_pose - driver_pose).max() > 10, "the two faces must differ in pose for this test to mean much"

    recombined = f3.recombine(source, driver, FACE_ADAPTER)
    assert torch.equal(recombined.coeffs["identity"], source.coeffs["identity"])
    assert torch.equal(recombined.coeffs["expression"], driver.coeffs["expression"])
    refit = fit_landmarks(recombined.landmarks(), ict_model)
    refit_pose = np.degrees(refit.angles[0].double().numpy())
    assert np.abs(refit_pose - driver_pose).max() < POSE_TOLERANCE_DEG, (refit_pose, driver_pose)
    # The face shape is the source's: its landmarks differ from the driver's own projection.
    own = driver.landmarks()
    shape_change = (recombined.landmarks() - own).norm(dim=-1).mean() / interocular_distance(own)
    assert shape_change > 0.02


def test_pose_only_and_expression_only_modes(ict_model, two_t1_faces):
    source = f3.fit_ict(two_t1_faces[0], ict_model, shared_identity=False)
    driver = f3.fit_ict(two_t1_faces[1], ict_model, shared_identity=False)
    pose_only = f3.recombine(source, driver, "pose only")
    assert torch.equal(pose_only.coeffs["angles"], driver.coeffs["angles"])
    assert torch.equal(pose_only.coeffs["expression"], source.coeffs["expression"])
    assert np.array_equal(pose_only.canvas, driver.canvas)
    expression_only = f3.recombine(source, driver, "expression and gaze only")
    assert torch.equal(expression_only.coeffs["angles"], source.coeffs["angles"])
    assert torch.equal(expression_only.coeffs["gaze"], driver.coeffs["gaze"])
    assert np.array_equal(expression_only.canvas, source.canvas)


def test_projection_lands_on_the_driver_face_in_its_512_crop(ict_model, two_t1_faces):
    """The driver's own fit, projected into its 512 crop, lands on its detected landmarks (<3% IOD)."""
    driver_faces = two_t1_faces[1]
    driver = f3.fit_ict(driver_faces, ict_model, shared_identity=False)
    crop = faceadapter512_crop(driver_faces.boxes(), driver_faces.image_size)
    images, points = f3.project_into_crop(driver, crop.forward, 512, crop.convention)
    detected = apply_affine(crop.forward[0], driver_faces.lm68()[0])
    iod = np.linalg.norm(detected[45] - detected[36])
    error = np.linalg.norm(points.points[0, :68] - detected, axis=1).mean() / iod
    assert error < 0.03, error
    lit = images[0].max(-1) > 0
    ys, xs = np.nonzero(lit)
    assert lit.mean() > 0.002 and detected[:, 0].min() - 10 < xs.mean() < detected[:, 0].max() + 10
    assert (f3.recombine(driver, driver, FACE_ADAPTER).landmarks() - driver.landmarks()).abs().max() < 1e-5


def test_gaze_comes_from_the_irises(ict_model, two_t1_faces):
    driver = f3.fit_ict(two_t1_faces[1], ict_model, shared_identity=False)
    gaze = driver.coeffs["gaze"][0]
    assert torch.isfinite(gaze).all() and gaze.abs().max() < 0.5 and gaze.abs().sum() > 0


def test_recombine_rejects_mismatched_inputs(ict_model, two_t1_faces):
    fx, projector = _bfm_fixture()
    ict = f3.fit_ict(two_t1_faces[0], ict_model, shared_identity=False)
    bfm = _bfm_fit(fx.inputs["in.coeff_src"][:1], projector)
    with pytest.raises(ValueError, match="same backend"):
        f3.recombine(ict, bfm, FACE_ADAPTER)
    two = _bfm_fit(fx.inputs["in.coeff_src"][:2], projector)
    three = _bfm_fit(fx.inputs["in.coeff_drive"][:3], projector)
    with pytest.raises(ValueError, match="2 frames and 'driver' 3"):
        f3.recombine(two, three, FACE_ADAPTER)
    assert len(f3.recombine(bfm, three, FACE_ADAPTER)) == 3


# ---------------------------------------------------------------- masks and spatial control


def test_swap_mask_class_sets_dilation_and_occlusions():
    labels = torch.zeros(1, 256, 256, dtype=torch.long)
    labels[0, 100:140, 100:140] = adapting_mask.SKIN
    labels[0, 110:120, 100:140] = adapting_mask.GLASSES
    labels[0, 100:140, 90:100] = 7  # an ear: inside face_with_ears, outside face
    labels[0, 10:20, 10:20] = 17  # hair far away: never in the mask
    mask = adapting_mask.swap_mask_from_parsing(labels)[0]
    assert mask[130, 120] == 1 and mask[130, 95] == 1
    assert mask[115, 125] == 0, "glasses are removed from the mask"
    assert mask[100 - 32, 120] == 1 and mask[100 - 32 - 3, 120] == 0, "face dilated by 65 (32 px), then 5 (2 px)"
    assert mask[15, 15] == 0


def test_geometric_mask_is_the_union_of_both_face_regions(two_t1_faces):
    a, b = (faces.lm68()[0] for faces in two_t1_faces)
    shift = np.array([300.0, 0.0])
    mask = adapting_mask.geometric_mask([a[None] - a.mean(0) + 200, b[None] - b.mean(0) + 200 + shift], 768, 9)[0]
    for points in (a - a.mean(0) + 200, b - b.mean(0) + 200 + shift):
        inside = np.round(points).astype(int)
        assert mask[inside[:, 1], inside[:, 0]].all()
    assert mask[5, 5] == 0


def test_spatial_control_keeps_base_outside_mask():
    base = torch.rand(2, 64, 64, 3)
    landmarks = torch.zeros(2, 64, 64, 3)
    landmarks[:, 30, 30] = 1.0
    mask = torch.zeros(2, 64, 64)
    mask[:, 20:40, 20:40] = 1
    control = adapting_mask.spatial_control(landmarks, base, mask)
    assert torch.equal(control[:, :20], base[:, :20])
    assert torch.equal(control[:, 20:40, 20:40], landmarks[:, 20:40, 20:40])
