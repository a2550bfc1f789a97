"""Choosing one face per frame and keeping that choice stable over a video."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import numpy as np

from .detect_mediapipe import box_iou
from .types import Face, FaceSet

log = logging.getLogger(__name__)

AUTHORS_LARGEST = "largest (Face-Adapter key)"
SELECTIONS = ("largest", "index", "closest", AUTHORS_LARGEST)
ORDERS = ("left-right", "right-left", "top-bottom", "largest-first", "score")
IF_NO_FACE = ("error", "use nearest frame")


class FrameDetector(Protocol):
    blendshape_names: list[str]

    def detect(self, rgb: np.ndarray) -> list[Face]: ...

    def detect_near(self, rgb: np.ndarray, box: np.ndarray) -> list[Face]: ...


@dataclass
class Selection:
    mode: str = "largest"  # one of SELECTIONS
    index: int = 0
    order: str = "left-right"
    position: tuple[float, float] = (0.5, 0.5)  # reference point as fractions of width and height

    def __post_init__(self):
        if self.mode not in SELECTIONS:
            raise ValueError(f"face selection {self.mode!r}: choose one of {SELECTIONS}")
        if self.order not in ORDERS:
            raise ValueError(f"face order {self.order!r}: choose one of {ORDERS}")
        if isinstance(self.index, bool) or not isinstance(self.index, (int, np.integer)) or self.index < 0:
            raise ValueError(
                f"face index {self.index!r}: it counts faces from 0 in '{self.order}' order (0 is the "
                "first); negative values do not count from the end"
            )


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
    if sel.mode == AUTHORS_LARGEST:
        return max(faces, key=faceadapter_key)
    if sel.mode == "index":
        ordered = order_faces(faces, sel.order)
        return ordered[sel.index] if sel.index < len(ordered) else None
    h, w = image_size
    ref = np.array([sel.position[0] * w, sel.position[1] * h])
    return min(faces, key=lambda f: float(np.linalg.norm(f.center - ref)))


def faceadapter_key(face: Face) -> float:
    """Face-Adapter's "largest" sort key, (x2-x1)*y2 - y1: an operator-precedence slip for the area, kept
    for exact reproduction (it favours lower faces)."""
    x1, y1, x2, y2 = (float(v) for v in face.box[:4])
    return (x2 - x1) * y2 - y1


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
    face_set = select_over_frames(
        n,
        (h, w),
        lambda i: detector.detect(frames[i]),
        lambda i, box: detector.detect_near(frames[i], box),
        selection,
        track,
        on_frame,
        backend,
    )
    face_set.blendshape_names = list(getattr(detector, "blendshape_names", []))
    return face_set


def select_over_frames(
    n: int,
    image_size: tuple[int, int],
    faces_in: Callable[[int], list[Face]],
    faces_near: Callable[[int, np.ndarray], list[Face]],
    selection: Selection,
    track: bool = True,
    on_frame: Callable[[int], None] | None = None,
    backend: str = "mediapipe",
) -> FaceSet:
    """One face per frame from ``faces_in(i)`` (all faces of frame i) and ``faces_near(i, box)`` (the faces
    around a box), by ``selection``, following the chosen face by overlap when ``track``."""
    chosen: list[Face | None] = []
    unselected: dict[int, int] = {}
    previous: Face | None = None
    if selection.mode == "index" and track:
        log.debug("index selection applies to the first frame with faces, then the face is tracked")
    for i in range(n):
        face = None
        if track and previous is not None:
            face = follow_face(faces_near(i, previous.box), previous)
            if face is None:
                face = follow_face(faces_in(i), previous)
        if face is None:
            found = faces_in(i)
            face = choose_face(found, selection, image_size)
            if face is None and found:
                unselected[i] = len(found)
            if face is not None and previous is not None:
                log.info("frame %d: tracked face lost, selected again by '%s'", i, selection.mode)
        chosen.append(face)
        if face is not None:
            previous = face
        if on_frame is not None:
            on_frame(i)
    return FaceSet(chosen, image_size, backend, [], found_unselected=unselected)


def _frame_list(frames: Sequence[int], limit: int = 20) -> str:
    text = ", ".join(str(i) for i in frames[:limit])
    return text + (f" and {len(frames) - limit} more" if len(frames) > limit else "")


def missing_faces_message(face_set: FaceSet, selection: Selection, input_name: str = "image") -> str:
    """Why frames have no selected face: no face found, or an index beyond the faces that were found."""
    parts = []
    by_count: dict[int, list[int]] = {}
    for frame, count in sorted(face_set.found_unselected.items()):
        if face_set.faces[frame] is None:
            by_count.setdefault(count, []).append(frame)
    for count, frames in by_count.items():
        parts.append(
            f"index {selection.index} of {count} face{'s' if count != 1 else ''} found in frame "
            f"{_frame_list(frames)} of '{input_name}' (select=index counts from 0 in '{selection.order}' "
            f"order: use 0 to {count - 1})"
        )
    empty = [i for i in face_set.missing if i not in face_set.found_unselected]
    if empty:
        parts.append(f"no face found in frame {_frame_list(empty)} of '{input_name}'")
    return (
        f"{'; '.join(parts)} ({len(face_set.missing)} of {len(face_set)} frames without a selected face, "
        f"backend {face_set.backend}, select={selection.mode})"
    )


def finish_selection(face_set: FaceSet, selection: Selection, if_no_face: str, input_name: str = "image") -> FaceSet:
    """Frames without a selected face: an error naming them ('error', or no face anywhere), else each takes the
    nearest frame's face ('use nearest frame')."""
    if if_no_face not in IF_NO_FACE:
        raise ValueError(f"if_no_face {if_no_face!r}: choose one of {IF_NO_FACE}")
    if face_set.missing and (if_no_face == "error" or len(face_set.missing) == len(face_set)):
        raise ValueError(missing_faces_message(face_set, selection, input_name))
    return fill_missing(face_set) if face_set.missing else face_set


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
    return FaceSet(
        faces, face_set.image_size, face_set.backend, face_set.blendshape_names, filled, face_set.found_unselected
    )
