"""Aligned crops and their transforms: FFHQ quad (PIE, DVA), ArcFace-template 256 and Face-Adapter 512.

Every crop function returns a `FaceCrop` (forward and inverse 2x3 affines per frame) so results can be
pasted back. Warping goes through `warp_frames`, which pre-shrinks large frames to avoid aliasing.
"""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

from .landmarks import ARCFACE_112, FACEADAPTER_BOX_512, FACEADAPTER_TEMPLATE_256
from .temporal import smooth_over_frames
from .types import FaceCrop, apply_affine, invert_affines

# ---------------------------------------------------------------- similarity fits


def procrustes_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 similarity mapping src points onto dst (Face-Adapter's `transformation_from_points`).

    Both sets are centred and scaled by their pooled standard deviation; rotation from the SVD.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    c1, c2 = src.mean(0), dst.mean(0)
    p1, p2 = src - c1, dst - c2
    s1, s2 = p1.std(), p2.std()
    p1, p2 = p1 / s1, p2 / s2
    u, _, vt = np.linalg.svd(p1.T @ p2)
    rot = (u @ vt).T
    scale = s2 / s1
    return np.hstack([scale * rot, (c2 - scale * rot @ c1)[:, None]])


def lstsq_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 least-squares similarity [[a,-b,tx],[b,a,ty]] mapping src onto dst (Face-Adapter's
    `get_affine_transform`) through the same 4x4 normal equations.

    The per-point products are formed in the inputs' own dtype and summed in float64, as the authors'
    code does with float32 keypoints, so float32 inputs reproduce their matrices to float64 precision.
    """
    src = np.asarray(src)
    dst = np.asarray(dst)
    sx, sy, dx, dy = src[:, 0], src[:, 1], dst[:, 0], dst[:, 1]
    n = len(src)
    sum_sq = float(np.sum((sx * sx + sy * sy).astype(np.float64)))
    sum_x, sum_y = float(np.sum(sx.astype(np.float64))), float(np.sum(sy.astype(np.float64)))
    normal = np.array(
        [[sum_sq, 0.0, sum_x, sum_y], [0.0, sum_sq, -sum_y, sum_x], [sum_x, -sum_y, n, 0.0], [sum_y, sum_x, 0.0, n]]
    )
    rhs = np.array(
        [
            np.sum((sx * dx + sy * dy).astype(np.float64)),
            np.sum((sx * dy - sy * dx).astype(np.float64)),
            np.sum(dx.astype(np.float64)),
            np.sum(dy.astype(np.float64)),
        ]
    )
    a, b, tx, ty = np.linalg.lstsq(normal, rhs, rcond=None)[0]
    return np.array([[a, -b, tx], [b, a, ty]])


# ---------------------------------------------------------------- warping


def warp_frames(frames: np.ndarray, forward: np.ndarray, size: int, border: str = "constant") -> np.ndarray:
    """Warp each (H,W,C) float32/uint8 frame with its 2x3 forward affine into a size x size crop."""
    out = []
    for frame, mat in zip(frames, forward):
        out.append(warp_one(frame, mat, size, border))
    return np.stack(out)


def warp_one(frame: np.ndarray, mat: np.ndarray, size: int, border: str = "constant") -> np.ndarray:
    mode = {"constant": cv2.BORDER_CONSTANT, "reflect": cv2.BORDER_REFLECT101, "replicate": cv2.BORDER_REPLICATE}[
        border
    ]
    scale = np.sqrt(abs(np.linalg.det(mat[:, :2])))
    shrink = int(np.floor(1.0 / scale)) if scale < 0.5 else 1
    if shrink > 1:
        # a plain bilinear warp aliases when it shrinks more than 2x: area-downsample first
        h, w = frame.shape[:2]
        small = cv2.resize(frame, (max(1, w // shrink), max(1, h // shrink)), interpolation=cv2.INTER_AREA)
        fx, fy = w / small.shape[1], h / small.shape[0]
        mat = mat @ np.array([[fx, 0, 0.5 * fx - 0.5], [0, fy, 0.5 * fy - 0.5], [0, 0, 1.0]])
        frame = small
    return cv2.warpAffine(frame, mat, (size, size), flags=cv2.INTER_LINEAR, borderMode=mode)


def make_crop(forward: np.ndarray, size: int, image_size: tuple[int, int], convention: str) -> FaceCrop:
    forward = np.asarray(forward, np.float64).reshape(-1, 2, 3)
    return FaceCrop(forward, invert_affines(forward), size, image_size, convention)


# ---------------------------------------------------------------- FFHQ quad (PIE, DVA)


def ffhq_quad_params(lm68: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre c and half-axes x, y of the FFHQ crop square for (N,68,2) landmarks."""
    eye_left = lm68[:, 36:42].mean(1)
    eye_right = lm68[:, 42:48].mean(1)
    eye_avg = (eye_left + eye_right) / 2
    eye_to_eye = eye_right - eye_left
    mouth_avg = (lm68[:, 48] + lm68[:, 54]) / 2
    eye_to_mouth = mouth_avg - eye_avg
    x = eye_to_eye - eye_to_mouth[:, ::-1] * np.array([-1.0, 1.0])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    half = np.maximum(np.linalg.norm(eye_to_eye, axis=1) * 2.0, np.linalg.norm(eye_to_mouth, axis=1) * 1.8)
    x *= half[:, None]
    y = x[:, ::-1] * np.array([-1.0, 1.0])
    c = eye_avg + eye_to_mouth * 0.1
    return c, x, y


def smooth_quad_params(
    c: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    sigma_center: float = 1.0,
    sigma_size: float = 3.0,
    mode: str = "nearest",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DVA/STIT temporal smoothing: Gaussian over frames, sigma 1 on the centre, 3 on the axes (the
    authors' edges: mode 'reflect')."""
    if len(c) < 2:
        return c, x, y
    return (
        smooth_over_frames(c, sigma_center, mode),
        smooth_over_frames(x, sigma_size, mode),
        smooth_over_frames(y, sigma_size, mode),
    )


def ffhq_quads(
    lm68: np.ndarray, smooth: bool = False, sigma_center: float = 1.0, sigma_size: float = 3.0, mode: str = "nearest"
) -> np.ndarray:
    """(N,4,2) FFHQ quads (corners c-x-y, c-x+y, c+x+y, c+x-y) in pixel-centre coordinates."""
    c, x, y = ffhq_quad_params(np.asarray(lm68, np.float64))
    if smooth:
        c, x, y = smooth_quad_params(c, x, y, sigma_center, sigma_size, mode)
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y], axis=1)


def quad_affines(quads: np.ndarray, size: int) -> np.ndarray:
    """(N,2,3) affines taking each quad onto the crop square's outer edge. Pixel centres sit at integers
    (cv2's convention), so the square's corners are at -0.5 and size-0.5, as in the authors' PIL chain
    (their quad + 0.5 in PIL's corner coordinates)."""
    corners = np.array([[0, 0], [0, size], [size, size], [size, 0]], np.float64) - 0.5
    return np.stack([cv2.getAffineTransform(q[:3].astype(np.float32), corners[:3].astype(np.float32)) for q in quads])


def ffhq_crop(
    lm68: np.ndarray,
    image_size: tuple[int, int],
    size: int = 256,
    smooth: bool = False,
    sigma_center: float = 1.0,
    sigma_size: float = 3.0,
    mode: str = "nearest",
) -> FaceCrop:
    """FFHQ-style quad crop for (N,68,2) landmarks; with smooth=True the quads are smoothed over frames."""
    quads = ffhq_quads(lm68, smooth, sigma_center, sigma_size, mode)
    return make_crop(quad_affines(quads, size), size, image_size, "ffhq")


def authors_ffhq_crops(frames: np.ndarray, crop: FaceCrop, transform_size: int = 1024) -> np.ndarray:
    """DVA's crop chain on uint8 (N,H,W,3) frames, for exact reproduction: PIL QUAD bilinear warp of the
    quad to 1024 (no padding, black outside), a JPEG round trip at PIL's default quality 75, then PIL's
    antialiased bilinear resize to the crop size (their dataset's Resize(256)). Uses crop's own quads."""
    import io

    from PIL import Image

    size = crop.crop_size
    corners = np.array([[0, 0], [0, size], [size, size], [size, 0]], np.float64) - 0.5
    out = []
    for frame, inverse in zip(frames, crop.inverse):
        quad = np.stack([apply_affine(inverse, p[None])[0] for p in corners])  # pixel-centre coordinates
        image = Image.fromarray(np.ascontiguousarray(frame, np.uint8)).transform(
            (transform_size, transform_size),
            Image.Transform.QUAD,
            (quad + 0.5).flatten().tolist(),
            Image.Resampling.BILINEAR,
        )
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=75)
        buffer.seek(0)
        image = Image.open(buffer).convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
        out.append(np.asarray(image))
    return np.stack(out)


# ---------------------------------------------------------------- ArcFace 256 and Face-Adapter 512


def arcface_crop(lm5: np.ndarray, image_size: tuple[int, int], size: int = 256) -> FaceCrop:
    """ArcFace-template crop of (N,5,2) points (Face-Adapter's 256 template when size is 256)."""
    template = FACEADAPTER_TEMPLATE_256 * (size / 256.0) if size != 112 else ARCFACE_112
    forward = np.stack([lstsq_similarity(p, template) for p in np.asarray(lm5, np.float64)])
    return make_crop(forward, size, image_size, "arcface256" if size == 256 else f"arcface{size}")


def faceadapter_pick_face(boxes: np.ndarray, authors_key: bool = True) -> int:
    """Index of the face Face-Adapter takes. The authors' key is (x2-x1)*y2 - y1 (an operator-precedence
    slip for the area); authors_key=False takes the true largest area."""
    boxes = np.asarray(boxes, np.float64)
    if authors_key:
        keys = (boxes[:, 2] - boxes[:, 0]) * boxes[:, 3] - boxes[:, 1]
    else:
        keys = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return int(np.argmax(keys))


def faceadapter_box_corners(box: np.ndarray, crop_ratio: float = 0.81) -> np.ndarray:
    """Corners [[x1,y1],[x1,y2],[x2,y2],[x2,y1]] of Face-Adapter's loose square around a detection box.

    Like the authors' code the half-side is width*crop_ratio (the height is not used); crop_ratio <= 0
    gives the tight square of side max(width, height). Computed in float32 as the authors' code does on
    SCRFD's float32 boxes: in float64 the 512 matrix moved by ~2e-5, which changed a few pixels of the 512
    crop and, through the second detection on it, the 256 crop (tests/integration/test_face_adapter_end_to_end.py).
    """
    x1, y1, x2, y2 = (np.float32(v) for v in box[:4])
    cx, cy = np.float32(0.5) * (x2 + x1), np.float32(0.5) * (y2 + y1)
    if crop_ratio > 0:
        half = (x2 - x1) * np.float32(crop_ratio)
    else:
        half = max(x2 - x1, y2 - y1) * np.float32(0.5)
    x1, y1, x2, y2 = cx - half, cy - half, cx + half, cy + half
    return np.array([[x1, y1], [x1, y2], [x2, y2], [x2, y1]], np.float32).astype(np.float64)


def smooth_boxes(boxes: np.ndarray, sigma_center: float = 1.0, sigma_size: float = 3.0) -> np.ndarray:
    """(N,4) x1,y1,x2,y2 boxes smoothed over frames like the FFHQ quads.

    sigma_center smooths the centre, sigma_size the size."""
    centre = (boxes[:, :2] + boxes[:, 2:4]) / 2
    half = (boxes[:, 2:4] - boxes[:, :2]) / 2
    centre, half = smooth_over_frames(centre, sigma_center), smooth_over_frames(half, sigma_size)
    return np.concatenate([centre - half, centre + half], axis=1)


def faceadapter512_crop(boxes: np.ndarray, image_size: tuple[int, int], crop_ratio: float = 0.81) -> FaceCrop:
    """Face-Adapter's 512 crop: the loose box mapped onto [80,432]^2 by a Procrustes similarity."""
    forward = np.stack(
        [procrustes_similarity(faceadapter_box_corners(b, crop_ratio), FACEADAPTER_BOX_512) for b in boxes]
    )
    return make_crop(forward, 512, image_size, "faceadapter512")


def faceadapter256_from_512(crop512: FaceCrop, lm5: np.ndarray) -> FaceCrop:
    """The 256 ArcFace-template crop taken from the 512 crop, as Face-Adapter does (its second stage).

    The five points are mapped into the 512 crop instead of detected again there, which is what the
    authors' second detection approximates and avoids its failure on tight crops.
    """
    lm5_512 = np.stack([apply_affine(m, p) for m, p in zip(crop512.forward, np.asarray(lm5, np.float64))])
    second = arcface_crop(lm5_512, (512, 512), 256)
    return crop512.chain(second)


def plain_warp(frame: np.ndarray, mat: np.ndarray, size: int) -> np.ndarray:
    """The authors' resampling: one bilinear cv2.warpAffine, constant black border, no pre-shrink."""
    return cv2.warpAffine(frame, np.asarray(mat, np.float64), (size, size), flags=cv2.INTER_LINEAR)


def authors_chain(
    frame: np.ndarray,
    forward512: np.ndarray,
    frame_lm5: np.ndarray,
    redetect: Callable[[np.ndarray], np.ndarray | None],
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Face-Adapter's crop chain for one frame: frame -> 512 (bilinear, no pre-shrink), the five points detected
    again on the 512 crop, their least-squares similarity (float32 points, as SCRFD gives) onto the 256 template.

    Returns the 512 crop, the 512 -> 256 matrix and whether the re-detection found a face; when it finds none,
    the frame's own points mapped into the crop are used (the authors' code stops there).
    """
    crop512 = plain_warp(frame, forward512, 512)
    lm5 = redetect(crop512)
    found = lm5 is not None
    if not found:
        lm5 = apply_affine(np.asarray(forward512, np.float64), np.asarray(frame_lm5, np.float64))
    return crop512, lstsq_similarity(np.asarray(lm5, np.float32), FACEADAPTER_TEMPLATE_256), found


def landmarks_in_crop(crop: FaceCrop, points: np.ndarray) -> np.ndarray:
    return np.stack([apply_affine(m, p) for m, p in zip(crop.forward, np.asarray(points, np.float64))])
