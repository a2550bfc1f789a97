"""mediapipe Face Landmarker backend: 478 points, blendshapes and head transform per face.

The landmarker's own detector is a short-range one (it sees its window at 128 px) that misses faces
smaller than about an eighth of the window, so large images are also searched in overlapping tiles: a
pyramid from half the short side down to MIN_TILE px, each level overlapping by half a tile, so a face of
MIN_TILE/8 px or more lies whole inside a tile where it is large enough. Magnified texture in the finer
tiles passes for a face at the landmarker's usual confidence, so those levels ask for more. Video frames
are searched first in a window around the face tracked in the previous frame.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from ..models.checkpoint import reading_model_file
from .landmarks import box_from_points, five_from_mediapipe, mediapipe_to_68
from .types import Face, apply_affine, invert_affines

log = logging.getLogger(__name__)

BACKEND = "mediapipe"
MIN_TILE = 320  # smallest tile of the search: faces down to about 40 px are found in any photo size
FINE_TILE_CONFIDENCE = 0.7  # t1.jpg at 3x: 12 false faces at 0.3, 4 at 0.5, 1 at 0.6, none at 0.7 or 0.8


class MediaPipeFaceDetector:
    """Runs mediapipe's FaceLandmarker (IMAGE mode) on RGB uint8 frames."""

    def __init__(
        self,
        model_path: str | Path,
        max_faces: int = 8,
        min_confidence: float = 0.3,
        fine_tile_confidence: float = FINE_TILE_CONFIDENCE,
    ):
        self.model_path, self.max_faces = model_path, max_faces
        self._landmarker = self._create(min_confidence)
        self._fine_confidence = max(min_confidence, fine_tile_confidence)
        self._fine_landmarker = None
        self.blendshape_names: list[str] = []

    def _create(self, confidence: float):
        from mediapipe.tasks.python import BaseOptions, vision

        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(self.model_path)),
            running_mode=vision.RunningMode.IMAGE,
            num_faces=self.max_faces,
            min_face_detection_confidence=confidence,
            min_face_presence_confidence=confidence,
            output_face_blendshapes=True,
            output_facial_transformation_matrixes=True,
        )
        with reading_model_file(self.model_path, "mediapipe task bundle"):
            return vision.FaceLandmarker.create_from_options(options)

    def _fine(self):
        """The landmarker for the finer tile levels: magnified texture there looks like faces at low confidence."""
        if self._fine_landmarker is None:
            self._fine_landmarker = self._create(self._fine_confidence)
        return self._fine_landmarker

    def close(self) -> None:
        for name in ("_landmarker", "_fine_landmarker"):
            landmarker = getattr(self, name)
            if landmarker is not None:
                landmarker.close()
                setattr(self, name, None)

    # ------------------------------------------------------------------ single passes

    def _run(self, rgb: np.ndarray, landmarker=None) -> list[Face]:
        import mediapipe as mp

        h, w = rgb.shape[:2]
        result = (landmarker or self._landmarker).detect(
            mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
        )
        faces = []
        for k, points in enumerate(result.face_landmarks):
            lm478 = np.array([[p.x * w, p.y * h, p.z * w] for p in points], dtype=np.float64)
            shapes = None
            if k < len(result.face_blendshapes):
                cats = result.face_blendshapes[k]
                shapes = np.array([c.score for c in cats], dtype=np.float32)
                if not self.blendshape_names:
                    self.blendshape_names = [c.category_name for c in cats]
            transform = None
            if k < len(result.facial_transformation_matrixes):
                transform = np.asarray(result.facial_transformation_matrixes[k], dtype=np.float64)
            faces.append(_face_from_points(lm478, shapes, transform))
        return faces

    def _run_warped(self, rgb: np.ndarray, forward: np.ndarray, size: int, landmarker=None) -> list[Face]:
        """Detect in a warped window and map the faces back to frame coordinates."""
        window = cv2.warpAffine(rgb, forward, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        back = invert_affines(forward[None])[0]
        faces = []
        for face in self._run(window, landmarker):
            pts = face.lm478.copy()
            pts[:, :2] = apply_affine(back, pts[:, :2])
            pts[:, 2] /= np.sqrt(abs(np.linalg.det(forward[:, :2])))
            faces.append(_face_from_points(pts, face.blendshapes, face.head_transform, margin=_margin(face.box, size)))
        return faces

    # ------------------------------------------------------------------ searches

    def detect(self, rgb: np.ndarray, tiles: str = "auto") -> list[Face]:
        """All faces in a frame. tiles: 'auto' (tile large frames), 'on' or 'off'."""
        faces = self._run(rgb)
        h, w = rgb.shape[:2]
        if tiles == "on" or (tiles == "auto" and (not faces or max(h, w) > 640)):
            faces = dedupe_faces(faces + self._detect_tiled(rgb))
        return faces

    def detect_near(self, rgb: np.ndarray, box: np.ndarray, context: float = 2.2, min_size: int = 256) -> list[Face]:
        """Faces in a square window around `box` (the tracked face of the previous frame)."""
        side = context * max(box[2] - box[0], box[3] - box[1])
        size = int(max(min_size, min(side, 768)))
        scale = size / side
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        forward = np.array([[scale, 0.0, size / 2 - scale * cx], [0.0, scale, size / 2 - scale * cy]])
        return self._run_warped(rgb, forward, size)

    def _detect_tiled(self, rgb: np.ndarray) -> list[Face]:
        h, w = rgb.shape[:2]
        faces = []
        for level, tile in enumerate(tile_sizes(h, w)):
            landmarker = self._landmarker if level == 0 else self._fine()
            size = max(tile, 256)
            scale = size / tile
            for y0 in _tile_starts(h, tile):
                for x0 in _tile_starts(w, tile):
                    forward = np.array([[scale, 0.0, -scale * x0], [0.0, scale, -scale * y0]])
                    for face in self._run_warped(rgb, forward, size, landmarker):
                        if not _cut_by_tile(face.box, x0, y0, tile, w, h):
                            faces.append(face)
        return faces


def tile_sizes(h: int, w: int, min_tile: int = MIN_TILE) -> list[int]:
    """Tile sides of the search pyramid: half the short side, halved while it stays at least min_tile."""
    sizes = [max(192, min(h, w) // 2)]
    while sizes[-1] // 2 >= min_tile:
        sizes.append(sizes[-1] // 2)
    return sizes


def _tile_starts(length: int, tile: int) -> list[int]:
    if length <= tile:
        return [0]
    stride = tile // 2
    starts = list(range(0, length - tile, stride)) + [length - tile]
    return sorted(set(starts))


def _cut_by_tile(box: np.ndarray, x0: int, y0: int, tile: int, w: int, h: int) -> bool:
    """True when the face reaches a tile edge that is not also an edge of the frame."""
    pad = 0.02 * tile
    return bool(
        (x0 > 0 and box[0] < x0 + pad)
        or (y0 > 0 and box[1] < y0 + pad)
        or (x0 + tile < w and box[2] > x0 + tile - pad)
        or (y0 + tile < h and box[3] > y0 + tile - pad)
    )


def _margin(box: np.ndarray, size: int) -> float:
    return float(min(box[0], box[1], size - box[2], size - box[3]) / size)


def _face_from_points(lm478: np.ndarray, blendshapes, transform, margin: float = 1.0) -> Face:
    lm68 = mediapipe_to_68(lm478)
    face = Face(
        box=box_from_points(lm478[:, :2]),
        score=1.0,
        lm68=lm68,
        lm5=five_from_mediapipe(lm478),
        backend=BACKEND,
        lm478=lm478,
        blendshapes=blendshapes,
        head_transform=transform,
    )
    face.window_margin = margin  # how far the face sat from the edge of the window it was found in
    return face


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def dedupe_faces(faces: list[Face], iou: float = 0.3) -> list[Face]:
    """Keep one face per location, preferring the one found farthest from its window's edges."""
    ranked = sorted(faces, key=lambda f: -getattr(f, "window_margin", 1.0))
    kept: list[Face] = []
    for face in ranked:
        if all(box_iou(face.box, k.box) < iou for k in kept):
            kept.append(face)
    return kept
