"""ComfyUI core's MediaPipe face landmarks (its FACE_LANDMARKS payload, ComfyUI 0.23+) to and from FaceControl faces.

Core's payload is ``{"frames": [[face_dict, ...] per frame], "image_size": (H, W), "connection_sets": {name:
frozenset of (a, b)}}`` with face_dict keys ``bbox_xyxy`` (4,), ``blendshapes`` {ARKit name: score},
``landmarks_xy`` (478, 2) image pixels, ``landmarks_3d`` (478, 3) in the mesh model's 192-px canonical units,
``presence``, ``score`` and ``transformation_matrix`` (4, 4), the same 478-vertex mesh as the mediapipe package's.
Everything here is plain NumPy: no ComfyUI import.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .landmarks import box_from_points, five_from_mediapipe, mediapipe_to_68
from .types import Face, FaceSet

BACKEND = "comfyui-mediapipe"
NUM_POINTS = 478
# core's connection-set names -> the mediapipe package's FaceLandmarksConnections attributes
_CONNECTION_PARTS = {
    "face_oval": ("FACE_LANDMARKS_FACE_OVAL",),
    "lips": ("FACE_LANDMARKS_LIPS",),
    "left_eye": ("FACE_LANDMARKS_LEFT_EYE",),
    "right_eye": ("FACE_LANDMARKS_RIGHT_EYE",),
    "left_eyebrow": ("FACE_LANDMARKS_LEFT_EYEBROW",),
    "right_eyebrow": ("FACE_LANDMARKS_RIGHT_EYEBROW",),
    "irises": ("FACE_LANDMARKS_LEFT_IRIS", "FACE_LANDMARKS_RIGHT_IRIS"),
    "nose": ("FACE_LANDMARKS_NOSE",),
    "tesselation": ("FACE_LANDMARKS_TESSELATION",),
}
_CONTOURS = ("face_oval", "left_eye", "right_eye", "left_eyebrow", "right_eyebrow", "lips")


def check_payload(payload: Any, input_name: str) -> None:
    """Refuse anything that is not core's FACE_LANDMARKS payload, naming what is wrong."""
    if not isinstance(payload, dict) or "frames" not in payload or "image_size" not in payload:
        raise ValueError(
            f"'{input_name}' is not ComfyUI's FACE_LANDMARKS (a dict with 'frames' and 'image_size'); "
            f"connect MediaPipe Face Landmarker's face_landmarks output"
        )
    for i, faces in enumerate(payload["frames"]):
        for face in faces:
            points = np.asarray(face.get("landmarks_xy", ()))
            if points.shape != (NUM_POINTS, 2) or not np.isfinite(points).all():
                raise ValueError(
                    f"'{input_name}' frame {i}: a face's landmarks_xy is {points.shape}, not 478 finite "
                    f"points in pixels"
                )


def faces_from_core(payload: dict) -> tuple[list[list[Face]], tuple[int, int], list[str]]:
    """Every face of every frame as a FaceControl Face (478, iBUG-68 and 5 points), the frame size and the
    blendshape names in the order the faces' blendshape arrays use."""
    names: list[str] = []
    for faces in payload["frames"]:
        for face in faces:
            names = names or list(face.get("blendshapes", {}))
    frames = [[_face(face, names) for face in faces] for faces in payload["frames"]]
    height, width = (int(v) for v in payload["image_size"])
    return frames, (height, width), names


def _face(face: dict, blendshape_names: Sequence[str]) -> Face:
    xy = np.asarray(face["landmarks_xy"], np.float64)
    lm478 = np.concatenate([xy, _depth_in_pixels(xy, face.get("landmarks_3d"))[:, None]], axis=1)
    shapes = face.get("blendshapes") or {}
    transform = face.get("transformation_matrix")
    return Face(
        box=np.asarray(face.get("bbox_xyxy", box_from_points(xy)), np.float64),
        score=float(face.get("score", 1.0)),
        lm68=mediapipe_to_68(lm478),
        lm5=five_from_mediapipe(lm478),
        backend=BACKEND,
        lm478=lm478,
        blendshapes=np.array([shapes.get(n, 0.0) for n in blendshape_names], np.float32) if shapes else None,
        head_transform=None if transform is None else np.asarray(transform, np.float64),
    )


def _depth_in_pixels(xy: np.ndarray, canonical: Any) -> np.ndarray:
    """Core keeps depth in the mesh model's canonical units; scale it to pixels by the canonical-to-image scale
    of the x, y coordinates (what mediapipe's own z * width is)."""
    if canonical is None:
        return np.zeros(len(xy))
    canonical = np.asarray(canonical, np.float64)
    spread_image = np.linalg.norm(xy - xy.mean(0), axis=1).mean()
    spread_canonical = np.linalg.norm(canonical[:, :2] - canonical[:, :2].mean(0), axis=1).mean()
    return (canonical[:, 2] - canonical[:, 2].mean()) * spread_image / max(spread_canonical, 1e-9)


def core_payload(face_set: FaceSet, input_name: str = "faces") -> dict:
    """The selected face of each frame as core's FACE_LANDMARKS (frames without a face are empty lists)."""
    frames = []
    for i, face in enumerate(face_set.faces):
        if face is None:
            frames.append([])
            continue
        if face.lm478 is None or len(face.lm478) != NUM_POINTS:
            raise ValueError(
                f"the face in frame {i} of '{input_name}' has no 478 mediapipe points ({face.backend}); "
                f"core's face nodes need them: detect with backend mediapipe"
            )
        frames.append([_face_dict(face, face_set.blendshape_names)])
    return {
        "frames": frames,
        "image_size": tuple(int(v) for v in face_set.image_size),
        "connection_sets": connection_sets(),
    }


def _face_dict(face: Face, blendshape_names: Sequence[str]) -> dict:
    shapes = {} if face.blendshapes is None else dict(zip(blendshape_names, (float(v) for v in face.blendshapes)))
    return {
        "bbox_xyxy": np.asarray(face.box, np.float32),
        "blendshapes": shapes,
        "landmarks_xy": np.asarray(face.lm478[:, :2], np.float32),
        "landmarks_3d": np.asarray(face.lm478, np.float32),  # pixels (x, y) and pixel-scaled depth
        "presence": 1.0,
        "score": float(face.score),
        "transformation_matrix": np.eye(4) if face.head_transform is None else np.asarray(face.head_transform),
    }


def connection_sets() -> dict[str, frozenset]:
    """Core's connection-set names, from the mediapipe package's mesh topology."""
    from mediapipe.tasks.python.vision.face_landmarker import FaceLandmarksConnections

    sets = {
        name: frozenset((c.start, c.end) for attr in attrs for c in getattr(FaceLandmarksConnections, attr))
        for name, attrs in _CONNECTION_PARTS.items()
    }
    sets["contours"] = frozenset().union(*(sets[p] for p in _CONTOURS))
    sets["all"] = sets["contours"] | sets["irises"] | sets["nose"]
    return sets
