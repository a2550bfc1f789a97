"""Face-Adapter's crop and alignment against the authors' recorded numbers (fixture fa_align)."""
import numpy as np
import pytest
import torch

from golden_fixtures import load_fixture
from facecontrol.face import align
from facecontrol.face.types import compose_affine
from facecontrol.face.landmarks import FACEADAPTER_BOX_512, FACEADAPTER_TEMPLATE_256

pytestmark = pytest.mark.golden


@pytest.fixture(scope="module")
def fx():
    return load_fixture("fa_align")


def test_box_512_matches_config(fx):
    np.testing.assert_array_equal(FACEADAPTER_BOX_512, np.array(fx.config["mean_box_lm4p_512"], np.float64))


def test_face_pick_keeps_authors_key(fx):
    boxes = fx.inputs["in.bboxes"].numpy()
    fx.check("selected_index", torch.tensor(align.faceadapter_pick_face(boxes)))


def test_loose_and_tight_boxes_and_crop_matrices(fx):
    box = fx.inputs["in.bboxes"].numpy()[int(fx.outputs["out.selected_index"])]
    loose = align.faceadapter_box_corners(box, fx.config["crop_ratio"])
    fx.check("bbox_pts4", torch.from_numpy(loose).float())
    fx.check("warp_mat_crop", torch.from_numpy(align.procrustes_similarity(loose, FACEADAPTER_BOX_512)))
    tight = align.faceadapter_box_corners(box, 0.0)
    fx.check("bbox_pts4_tight", torch.from_numpy(tight).float())
    fx.check("warp_mat_crop_tight", torch.from_numpy(align.procrustes_similarity(tight, FACEADAPTER_BOX_512)))


def test_crops_512_and_256(fx):
    image = fx.inputs["in.image"].numpy()
    h, w = fx.config["image_hw"]
    boxes = fx.inputs["in.bboxes"].numpy()
    sel = align.faceadapter_pick_face(boxes)
    crop512 = align.faceadapter512_crop(boxes[sel : sel + 1], (h, w), fx.config["crop_ratio"])
    img512 = align.warp_frames(image[None], crop512.forward, fx.config["crop_size"])[0]
    fx.check("crop512", torch.from_numpy(img512))

    mat256 = align.lstsq_similarity(fx.inputs["in.pts5_512"].numpy(), FACEADAPTER_TEMPLATE_256)
    fx.check("warp_mat256", torch.from_numpy(mat256))
    img256 = align.warp_frames(img512[None], mat256[None], fx.config["align_size"])[0]
    fx.check("crop256", torch.from_numpy(img256))


def test_chained_256_crop_equals_two_stage_warp(fx):
    """Our one-step frame->256 warp (chained affines) matches the authors' two-stage warp closely."""
    image = fx.inputs["in.image"].numpy()
    boxes = fx.inputs["in.bboxes"].numpy()
    sel = align.faceadapter_pick_face(boxes)
    crop512 = align.faceadapter512_crop(boxes[sel : sel + 1], tuple(fx.config["image_hw"]), fx.config["crop_ratio"])
    kps = fx.inputs["in.kps"].numpy()[sel : sel + 1]
    crop256 = align.faceadapter256_from_512(crop512, kps)
    expected = compose_affine(fx.outputs["out.warp_mat256"].numpy(), fx.outputs["out.warp_mat_crop"].numpy())
    np.testing.assert_allclose(crop256.forward[0], expected, rtol=0, atol=1e-3)
