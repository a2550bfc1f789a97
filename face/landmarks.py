"""Landmark conventions: mediapipe 478 -> iBUG 68 -> 5 points, and the ArcFace / Face-Adapter templates."""

from __future__ import annotations

import numpy as np

# mediapipe Face Mesh vertex for each iBUG-68 point. Eyes, brows, nose and lips follow the mesh's
# named contours; a few nose/lip points were chosen as the mesh vertices closest, on average over
# astronaut.png and carphone frames, to dlib's 68-point predictor. The jaw takes the face-oval vertices
# (left/right mirrored) that a leave-one-face-out fit over astronaut, carphone and t1.jpg chose for every
# held-out face alike.
MEDIAPIPE_TO_IBUG68 = np.array(
    [
        127,
        234,
        132,
        58,
        172,
        136,
        149,
        148,
        152,
        377,
        378,
        365,
        397,
        288,
        361,
        454,
        356,  # jaw 0-16
        70,
        63,
        105,
        66,
        107,  # right brow 17-21 (subject's right, image left)
        336,
        296,
        334,
        293,
        300,  # left brow 22-26
        168,
        6,
        195,
        4,  # nose bridge 27-30
        240,
        97,
        2,
        326,
        460,  # lower nose 31-35
        33,
        160,
        158,
        133,
        153,
        144,  # right eye 36-41
        362,
        385,
        387,
        263,
        373,
        380,  # left eye 42-47
        61,
        39,
        37,
        0,
        267,
        269,
        291,
        321,
        314,
        17,
        84,
        91,  # outer lip 48-59
        78,
        82,
        13,
        312,
        308,
        317,
        14,
        87,
    ],  # inner lip 60-67
    dtype=np.int64,
)

MEDIAPIPE_IRIS_CENTRES = (468, 473)  # image-left eye, image-right eye

# ArcFace 112x112 five-point template (eye image-left, eye image-right, nose, mouth image-left, image-right)
ARCFACE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)
# Face-Adapter's 256 template: ArcFace 112 shifted to a 128 square (x+8), then doubled
# (stored as float32 like the authors', which their similarity fit depends on at the 1e-6 level)
FACEADAPTER_TEMPLATE_256 = np.stack([(ARCFACE_112[:, 0] + 8) * 2, ARCFACE_112[:, 1] * 2], axis=1).astype(np.float32)
# Face-Adapter's loose-box corners in the 512 crop
FACEADAPTER_BOX_512 = np.array([[80, 80], [80, 432], [432, 432], [432, 80]], dtype=np.float64)


def mediapipe_to_68(points478: np.ndarray) -> np.ndarray:
    """(..., 478, >=2) -> (..., 68, 2)."""
    return points478[..., MEDIAPIPE_TO_IBUG68, :2]


def five_from_68(lm68: np.ndarray) -> np.ndarray:
    """(..., 68, 2) -> (..., 5, 2): eye centres, nose tip, mouth corners, in insightface order."""
    return np.stack(
        [
            lm68[..., 36:42, :].mean(-2),
            lm68[..., 42:48, :].mean(-2),
            lm68[..., 30, :],
            lm68[..., 48, :],
            lm68[..., 54, :],
        ],
        axis=-2,
    )


def five_from_mediapipe(points478: np.ndarray) -> np.ndarray:
    """Five points with the iris centres as eye centres (more precise than the eyelid average)."""
    lm68 = mediapipe_to_68(points478)
    five = five_from_68(lm68)
    if points478.shape[-2] >= 478:
        five[..., 0, :] = points478[..., MEDIAPIPE_IRIS_CENTRES[0], :2]
        five[..., 1, :] = points478[..., MEDIAPIPE_IRIS_CENTRES[1], :2]
    return five


def box_from_points(points: np.ndarray) -> np.ndarray:
    return np.array([points[:, 0].min(), points[:, 1].min(), points[:, 0].max(), points[:, 1].max()], dtype=np.float64)
