"""Drawing detected faces on frames for inspection."""

from __future__ import annotations

import cv2
import numpy as np

from .types import Face


def draw_face(frame: np.ndarray, face: Face, show_478: bool = False, thickness: int = 0) -> np.ndarray:
    """Box (green), iBUG-68 points (red), 5 points (blue) and optionally the 478 mesh (grey) on a copy of
    an (H,W,3) uint8 RGB frame."""
    out = np.ascontiguousarray(frame.copy())
    h, w = out.shape[:2]
    t = thickness or max(1, round(max(h, w) / 400))
    x1, y1, x2, y2 = (int(round(v)) for v in face.box)
    cv2.rectangle(out, (x1, y1), (x2, y2), (0, 255, 0), t)
    if show_478 and face.lm478 is not None:
        for x, y in face.lm478[:, :2]:
            cv2.circle(out, (int(round(x)), int(round(y))), max(1, t // 2), (160, 160, 160), -1)
    for x, y in face.lm68:
        cv2.circle(out, (int(round(x)), int(round(y))), t + 1, (255, 0, 0), -1)
    for x, y in face.lm5:
        cv2.circle(out, (int(round(x)), int(round(y))), t + 2, (0, 0, 255), -1)
    return out


def draw_no_face(frame: np.ndarray, text: str = "no face") -> np.ndarray:
    out = np.ascontiguousarray(frame.copy())
    h, w = out.shape[:2]
    cv2.putText(out, text, (5, max(15, h // 12)), cv2.FONT_HERSHEY_SIMPLEX, max(0.4, w / 600), (255, 0, 0), 2)
    return out
