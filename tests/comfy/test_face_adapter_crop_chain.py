"""The authors' crop chain (frame -> 512 bilinear, the five points found again on the 512 crop, that crop warped
to 256) against the one-warp chain, on the real photos' faces."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from media import load_rgb


@pytest.fixture(scope="module")
def face_nodes(comfy_in_process):
    import comfy.cli_args

    if not torch.cuda.is_available():
        comfy.cli_args.args.cpu = True
    from facecontrol.nodes import face_nodes

    return face_nodes


def _faces(detector, rgb, index):
    from facecontrol.face.select import Selection, detect_face_set

    return detect_face_set(rgb[None], detector, Selection("index", index), track=False)


def test_chain_with_the_same_points_has_the_one_warp_geometry(face_nodes, detector):
    """With the frame's own points mapped into the 512 crop the chain's frame -> 256 matrix is the one-warp
    canvas (a least-squares similarity commutes with the 512 similarity); only resampling differs."""
    from facecontrol.face import align
    from facecontrol.face.face3dmm import arcface_canvas
    from facecontrol.face.types import apply_affine

    rgb = load_rgb("t1.jpg")
    faces = _faces(detector, rgb, 3)
    forward = align.faceadapter512_crop(faces.boxes(), faces.image_size).forward[0]
    lm5 = faces.lm5()[0]
    chain = face_nodes.authors_crop_chain(rgb[None], faces, redetect=lambda crop: apply_affine(forward, lm5))
    one_warp = arcface_canvas(faces)[0]
    # the same crop up to the float32 points the authors' similarity is fitted on: under 0.01 px in the frame
    assert _frame_offset(chain.canvas[0], one_warp) < 0.01
    np.testing.assert_array_equal(chain.crops512[0], align.plain_warp(rgb, forward, 512))
    two_warps = face_nodes.chain_256_crops(chain, chain.canvas)[0].astype(np.float64)
    single = align.warp_one(rgb, one_warp, 256).astype(np.float64)
    difference = np.abs(two_warps - single).mean()
    assert 0.05 < difference < 1.0  # measured 0.22 levels of 255 on this face (docs/BENCHMARKS.md)


def test_chain_uses_the_points_found_on_the_512_crop(face_nodes, detector):
    """The 256 matrix comes from the points detected on the crop (here mediapipe's, standing in for SCRFD);
    when the crop has no face the frame's points are used."""
    from facecontrol.face import align
    from facecontrol.face.face3dmm import arcface_canvas
    from facecontrol.face.types import compose_affine

    rgb = load_rgb("astronaut.png")
    faces = _faces(detector, rgb, 0)
    found = {}

    def redetect(crop):
        points = detector.detect(crop)[0].lm5.astype(np.float32)
        found["points"] = points
        return points

    chain = face_nodes.authors_crop_chain(rgb[None], faces, redetect=redetect)
    warp = align.lstsq_similarity(found["points"], align.FACEADAPTER_TEMPLATE_256)
    np.testing.assert_allclose(chain.canvas[0], compose_affine(warp, chain.forward512[0]), atol=1e-9)
    assert _frame_offset(chain.canvas[0], arcface_canvas(faces)[0]) > 0.05  # the re-detected points differ

    fallback = face_nodes.authors_crop_chain(rgb[None], faces, redetect=lambda crop: None)
    assert _frame_offset(fallback.canvas[0], arcface_canvas(faces)[0]) < 0.01


def _frame_offset(a: np.ndarray, b: np.ndarray) -> float:
    """Largest distance in frame pixels between where two frame -> 256 matrices put the 256 template points."""
    from facecontrol.face.align import FACEADAPTER_TEMPLATE_256
    from facecontrol.face.types import apply_affine, invert_affines

    inv = invert_affines(np.stack([a, b]))
    return float(
        np.abs(apply_affine(inv[0], FACEADAPTER_TEMPLATE_256) - apply_affine(inv[1], FACEADAPTER_TEMPLATE_256)).max()
    )


def test_auto_is_one_warp_without_scrfd(face_nodes, tmp_path, monkeypatch):
    import folder_paths

    from facecontrol.nodes.common import register_model_folders

    register_model_folders()
    for key in ("face_adapter", "insightface"):
        (tmp_path / key).mkdir()
        exts = folder_paths.folder_names_and_paths[key][1]
        monkeypatch.setitem(folder_paths.folder_names_and_paths, key, ([str(tmp_path / key)], exts))
    assert face_nodes.crop_chain("auto") == "one warp"
    scrfd = tmp_path / "face_adapter" / "third_party" / "models" / "antelopev2" / "scrfd_10g_bnkps.onnx"
    scrfd.parent.mkdir(parents=True)
    scrfd.write_bytes(b"")
    assert face_nodes.crop_chain("auto") == face_nodes.AUTHORS_CHAIN
    assert face_nodes.crop_chain_for("auto", "reflect") == "one warp"
    with pytest.raises(ValueError, match="border 'constant'"):
        face_nodes.crop_chain_for(face_nodes.AUTHORS_CHAIN, "reflect")
