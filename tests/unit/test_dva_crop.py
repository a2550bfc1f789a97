"""DVA's preprocessing for exact reproduction: scipy-reflect smoothing, the authors' PIL crop chain, and the
pack's crop placed on the same pixel grid (no half-pixel shift)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d

from facecontrol.face import align
from facecontrol.face.temporal import smooth_over_frames
from facecontrol.face.types import FaceCrop, invert_affines

from media import load_rgb


@pytest.mark.parametrize("frames", [5, 40])
def test_reflect_smoothing_is_scipys_default(frames):
    values = np.random.default_rng(0).normal(size=(frames, 2)).cumsum(0)
    for sigma in (1.0, 3.0):
        assert np.allclose(
            smooth_over_frames(values, sigma, "reflect"), gaussian_filter1d(values, sigma, axis=0), atol=1e-10
        )
        assert np.allclose(
            smooth_over_frames(values, sigma), gaussian_filter1d(values, sigma, axis=0, mode="nearest"), atol=1e-10
        )


def _crop(side: float, size: int = 256) -> FaceCrop:
    centre = np.array([255.0, 130.0])
    x, y = np.array([side / 2, 0.0]), np.array([0.0, side / 2])
    quads = np.stack([centre - x - y, centre - x + y, centre + x + y, centre + x - y])[None]
    forward = align.quad_affines(quads, size)
    return FaceCrop(forward, invert_affines(forward), size, (512, 512), "ffhq")


def _shift(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    grey = lambda v: cv2.cvtColor(v, cv2.COLOR_RGB2GRAY).astype(np.float64)
    (dx, dy), _ = cv2.phaseCorrelate(grey(a), grey(b), cv2.createHanningWindow((a.shape[1], a.shape[0]), cv2.CV_64F))
    return np.array([dx, dy])


@pytest.mark.parametrize("side", [120.0, 260.0, 400.0])
def test_pack_crop_sits_on_the_authors_pixel_grid(side):
    image = load_rgb("astronaut.png")
    crop = _crop(side)
    authors = align.authors_ffhq_crops(image[None], crop)[0]
    ours = align.warp_one(image, crop.forward[0], 256)
    assert authors.shape == ours.shape == (256, 256, 3)
    assert np.abs(_shift(authors, ours)).max() < 0.1
    # the earlier mapping (quad corners on pixel centres 0 and 256) was half a pixel off
    old = crop.forward[0] + np.array([[0, 0, 0.5], [0, 0, 0.5]])
    assert (np.abs(_shift(authors, align.warp_one(image, old, 256))) > 0.3).all()
    assert np.abs(authors.astype(float) - ours).mean() < 3.0


def test_authors_chain_is_warp_jpeg_resize():
    from io import BytesIO

    from PIL import Image

    image = load_rgb("astronaut.png")
    crop = _crop(260.0)
    quad = np.array([[125.0, 0.0], [125.0, 260.0], [385.0, 260.0], [385.0, 0.0]])  # its corners, pixel-centre coords
    big = Image.fromarray(image).transform(
        (1024, 1024), Image.Transform.QUAD, (quad + 0.5).flatten().tolist(), Image.Resampling.BILINEAR
    )
    buffer = BytesIO()
    big.save(buffer, "JPEG")  # PIL's default quality, 75
    expected = np.asarray(Image.open(buffer).convert("RGB").resize((256, 256), Image.Resampling.BILINEAR))
    assert np.array_equal(align.authors_ffhq_crops(image[None], crop)[0], expected)
