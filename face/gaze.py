"""Gaze in Face-Adapter's 4-number convention, measured from mediapipe iris centres.

For each eye, ``(iris_centre - mid(corner_a, corner_b)) / |corner_b - corner_a|`` in image pixels
(x right, y down), first the iBUG-68 eye of points 36/39, then the eye of points 42/45. Face-Adapter
draws the gaze points back as ``gaze[:, :2] * |lm39 - lm36| + mid(36, 39)`` and
``gaze[:, 2:] * |lm45 - lm42| + mid(42, 45)``, which lands on the iris again.

Mediapipe's refined mesh has iris centres 468 (its "right iris", ring 469-472, beside eye corners
33/133: the subject's right eye, iBUG 36-41, image left in an unmirrored photo) and 473 (its "left
iris", ring 474-477, beside 362/263: iBUG 42-47).
"""

from __future__ import annotations

import torch

MEDIAPIPE_RIGHT_IRIS_CENTRE = 468  # subject's right eye = iBUG 36-41
MEDIAPIPE_LEFT_IRIS_CENTRE = 473  # subject's left eye = iBUG 42-47
EYE_CORNERS_68 = ((36, 39), (42, 45))


def gaze_from_iris(mediapipe_points: torch.Tensor, landmarks68: torch.Tensor) -> torch.Tensor:
    """(B,478,2|3) mediapipe points and (B,68,2) iBUG points, same pixel frame -> (B,4) gaze.

    Returns (dx, dy) for the 36/39 eye then (dx, dy) for the 42/45 eye, each in units of that eye's
    corner distance.
    """
    if mediapipe_points.ndim != 3 or mediapipe_points.shape[1] < 478:
        raise ValueError(f"need (B,478,2|3) mediapipe points with irises, got {tuple(mediapipe_points.shape)}")
    if landmarks68.ndim != 3 or landmarks68.shape[1:] != (68, 2):
        raise ValueError(f"need (B,68,2) iBUG-68 points, got {tuple(landmarks68.shape)}")
    irises = mediapipe_points[:, [MEDIAPIPE_RIGHT_IRIS_CENTRE, MEDIAPIPE_LEFT_IRIS_CENTRE], :2]
    return gaze_from_points(irises.to(landmarks68), landmarks68)


def gaze_from_points(iris_centres: torch.Tensor, landmarks68: torch.Tensor) -> torch.Tensor:
    """(B,2,2) iris centres (36/39 eye first) and (B,68,2) points -> (B,4) gaze offsets."""
    offsets = []
    for eye, (first, second) in enumerate(EYE_CORNERS_68):
        corner_a, corner_b = landmarks68[:, first], landmarks68[:, second]
        centre = 0.5 * (corner_a + corner_b)
        width = (corner_b - corner_a).norm(dim=-1, keepdim=True).clamp_min(1e-6)
        offsets.append((iris_centres[:, eye] - centre) / width)
    return torch.cat(offsets, -1)


def gaze_points(gaze: torch.Tensor, landmarks68: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`gaze_from_points` as Face-Adapter draws it: (B,4), (B,68,2) -> (B,2,2) px, the offsets in
    eye-width units from each eye's centre (the arithmetic of the authors' draw_pts70, golden fa_draw_pts70)."""
    firsts, seconds = zip(*EYE_CORNERS_68)
    corner_a, corner_b = landmarks68[:, list(firsts)], landmarks68[:, list(seconds)]
    width = torch.sqrt(((corner_b - corner_a) ** 2).sum(dim=-1, keepdim=True))
    return gaze.reshape(-1, 2, 2) * width + (corner_b + corner_a) * 0.5
