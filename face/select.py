"""Choosing one face per frame and keeping that choice stable over a video."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import numpy as np

from .detect_mediapipe import box_iou
from .types import Face, FaceSet

log = logging.getLogger(__name__)

SELECTIONS = ("largest", "index", "closest")
ORDERS = ("left-right", "right-left", "top-bottom", "largest-first", "score")


class FrameDetector(Protocol):
    blendshape_names: list[str]

    def detect(self, rgb: np.ndarray) -> list[Face]: ...

    def detect_near(self, rgb: np.ndarray, box: np.ndarray) -> list[Face]: ...


@dataclass
class Selection:
    mode: str = "largest"  # largest | index | closest
    index: int = 0
    order: str = "left-right"
    position: tuple[float, float] = (0.5, 0.5)  # reference point as fractions of width and height

    def __post_init__(self):
        if self.mode not in SELECTIONS:
            raise ValueError(f"face selection {self.mode!r}: choose one of {SELECTIONS}")
        if self.order not in ORDERS:
            raise ValueError(f"face order {self.order!r}: choose one of {ORDERS}")


def order_faces(faces: Sequence[Face], order: str) -> list[Face]:
    keys: dict[str, Callable[[Face], float]] = {
        "left-right": lambda f: f.center[0],
        "right-left": lambda f: -f.center[0],
        "top-bottom": lambda f: f.center[1],
        "largest-first": lambda f: -f.area,
        "score": lambda f: -f.score,
    }
    return sorted(faces, key=keys[order])


def choose_face(faces: Sequence[Face], sel: Selection, image_size: tuple[int, int]) -> Face | None:
    if not faces:
        return None
    if sel.mode == "largest":
        return max(faces, key=lambda f: f.area)
    if sel.mode == "index":
        ordered = order_faces(faces, sel.order)
        return ordered[sel.index] if sel.index < len(ordered) else None
    h, w = image_size
    ref = np.array([sel.position[0] * w, sel.position[1] * h])
    return min(faces, key=lambda f: float(np.linalg.norm(f.center - ref)))


def follow_face(faces: Sequence[Face], previous: Face, min_iou: float = 0.1) -> Face | None:
    """The face overlapping the previous frame's choice most, if it overlaps enough."""
    best = max(faces, key=lambda f: box_iou(f.box, previous.box), default=None)
    if best is None or box_iou(best.box, previous.box) < min_iou:
        return None
    return best


def detect_face_set(
    frames: np.ndarray,
    detector: FrameDetector,
    selection: Selection,
    track: bool = True,
    on_frame: Callable[[int], None] | None = None,
    backend: str = "mediapipe",
) -> FaceSet:
    """Detect and select one face in each of (N,H,W,3) uint8 RGB frames.

    With track=True the face chosen in the first frame that has one is followed by overlap: later frames
    are searched near it first, and the selection rule only applies again when it is lost.
    """
    n, h, w = frames.shape[:3]
    chosen: list[Face | None] = []
    previous: Face | None = None
    if selection.mode == "index" and track:
        log.debug("index selection applies to the first frame with faces, then the face is tracked")
    for i, frame in enumerate(frames):
        face = None
        if track and previous is not None:
            face = follow_face(detector.detect_near(frame, previous.box), previous)
            if face is None:
                face = follow_face(detector.detect(frame), previous)
        if face is None:
            face = choose_face(detector.detect(frame), selection, (h, w))
            if face is not None and previous is not None:
                log.info("frame %d: tracked face lost, selected again by '%s'", i, selection.mode)
        chosen.append(face)
        if face is not None:
            previous = face
        if on_frame is not None:
            on_frame(i)
    return FaceSet(chosen, (h, w), backend, list(getattr(detector, "blendshape_names", [])))


def fill_missing(face_set: FaceSet) -> FaceSet:
    """Reuse the nearest detected frame's face where a frame has none (recorded in filled_from)."""
    found = [i for i, f in enumerate(face_set.faces) if f is not None]
    if not found:
        return face_set
    faces = list(face_set.faces)
    filled = {}
    for i in face_set.missing:
        src = min(found, key=lambda j: abs(j - i))
        faces[i] = faces[src]
        filled[i] = src
    return FaceSet(faces, face_set.image_size, face_set.backend, face_set.blendshape_names, filled)
