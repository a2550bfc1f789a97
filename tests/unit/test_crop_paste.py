"""Crops and paste-back on real frames: an unchanged crop pasted back reproduces the frame, and DVA's
temporal smoothing makes video crops steadier."""

import logging

import numpy as np
import pytest

from facecontrol.face import align
from facecontrol.face.paste import crop_area_mask, paste_back
from facecontrol.face.select import Selection, detect_face_set
from facecontrol.face.types import apply_affine

from media import load_rgb, load_video_rgb

log = logging.getLogger(__name__)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


def face_region(face, shape) -> np.ndarray:
    x1, y1, x2, y2 = face.box.astype(int)
    region = np.zeros(shape[:2], bool)
    region[max(0, y1) : y2, max(0, x1) : x2] = True
    return region


@pytest.mark.parametrize("convention", ["ffhq", "arcface256", "faceadapter512"])
def test_unchanged_crop_pasted_back_reproduces_the_face(detector, convention):
    image = load_rgb("astronaut.png")
    face_set = detect_face_set(image[None], detector, Selection())
    face = face_set.faces[0]
    if convention == "ffhq":
        crop = align.ffhq_crop(face_set.lm68(), image.shape[:2], 512)
    elif convention == "arcface256":
        crop = align.arcface_crop(face_set.lm5(), image.shape[:2], 256)
    else:
        crop = align.faceadapter512_crop(face_set.boxes(), image.shape[:2])
    crops = align.warp_frames(image[None], crop.forward, crop.crop_size)
    out, used = paste_back(
        image[None].astype(np.float32), crops.astype(np.float32), crop, crop_area_mask(crop.crop_size)[None], 16
    )
    region = face_region(face, image.shape)
    value = psnr(out[0][region], image[region])
    log.info("%s: paste-back of the unchanged crop, PSNR %.1f dB in the face box", convention, value)
    assert value > 40
    outside = used[0] == 0
    assert outside.any() and np.array_equal(out[0][outside], image[outside].astype(np.float32))


def test_crop_maps_landmarks_to_the_template(detector):
    image = load_rgb("astronaut.png")
    face_set = detect_face_set(image[None], detector, Selection())
    crop = align.arcface_crop(face_set.lm5(), image.shape[:2], 256)
    mapped = apply_affine(crop.forward[0], face_set.lm5()[0])
    from facecontrol.face.landmarks import FACEADAPTER_TEMPLATE_256

    assert np.abs(mapped - FACEADAPTER_TEMPLATE_256).max() < 13  # a similarity fit of 5 points: within 5% of the crop
    back = apply_affine(crop.inverse[0], mapped)
    np.testing.assert_allclose(back, face_set.lm5()[0], atol=1e-6)


def crop_jitter(crop) -> float:
    """Mean frame-to-frame acceleration of the crop's corners, in frame pixels (motion itself is not
    penalised, only its unsteadiness)."""
    corners = np.array([[0, 0], [0, crop.crop_size], [crop.crop_size, crop.crop_size], [crop.crop_size, 0]], float)
    tracks = np.stack([apply_affine(inv, corners) for inv in crop.inverse])  # (N,4,2)
    return float(np.linalg.norm(np.diff(tracks, n=2, axis=0), axis=-1).mean())


def test_smoothed_ffhq_crops_jitter_less_on_carphone(detector):
    frames = load_video_rgb()
    face_set = detect_face_set(frames, detector, Selection())
    assert face_set.missing == []
    raw = crop_jitter(align.ffhq_crop(face_set.lm68(), frames.shape[1:3], 256, smooth=False))
    smooth = crop_jitter(align.ffhq_crop(face_set.lm68(), frames.shape[1:3], 256, smooth=True))
    log.info("carphone FFHQ crop jitter: unsmoothed %.3f px, smoothed %.3f px (%.1fx less)", raw, smooth, raw / smooth)
    assert smooth < 0.5 * raw
