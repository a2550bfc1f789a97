"""Core ComfyUI's MediaPipe FACE_LANDMARKS payload to FaceControl faces and back, on real faces (t1.jpg).

The payload is built the way core's MediaPipe Face Landmarker builds it (comfy_extras/nodes_mediapipe.py of
ComfyUI 0.23+): per frame a list of face dicts with landmarks_xy in pixels and landmarks_3d in canonical units.
"""

from __future__ import annotations

import numpy as np
import pytest

from facecontrol.face import core_landmarks
from facecontrol.face.select import Selection, detect_face_set, finish_selection, select_over_frames

from media import load_rgb


@pytest.fixture(scope="module")
def t1_faces(detector):
    frame = load_rgb("t1.jpg")
    return frame, detector.detect(frame)


def _core_face(face, scale: float = 0.4) -> dict:
    xy = face.lm478[:, :2].astype(np.float32)
    canonical = np.concatenate([(xy - xy.mean(0)) * scale, face.lm478[:, 2:] * scale], axis=1)
    return {
        "bbox_xyxy": np.concatenate([xy.min(0), xy.max(0)]).astype(np.float32),
        "blendshapes": {"_neutral": 0.1, "jawOpen": 0.4},
        "landmarks_xy": xy,
        "landmarks_3d": canonical,
        "presence": 3.0,
        "score": 0.9,
        "transformation_matrix": np.eye(4),
    }


def test_core_faces_select_like_detect_faces(t1_faces, detector):
    frame, faces = t1_faces
    payload = {"frames": [[_core_face(f) for f in faces]], "image_size": frame.shape[:2], "connection_sets": {}}
    frames, size, names = core_landmarks.faces_from_core(payload)
    selection = Selection("index", 2, "left-right")
    ours = select_over_frames(1, size, lambda i: frames[i], lambda i, box: frames[i], selection)
    theirs = detect_face_set(frame[None], detector, selection, track=False)
    np.testing.assert_allclose(ours.faces[0].lm68, theirs.faces[0].lm68, atol=1e-3)
    np.testing.assert_allclose(ours.faces[0].lm5, theirs.faces[0].lm5, atol=1e-3)
    assert names == ["_neutral", "jawOpen"] and ours.faces[0].blendshapes.tolist() == pytest.approx([0.1, 0.4])
    # depth comes back in pixels: the canonical scale (0.4) is undone from the x, y spread
    np.testing.assert_allclose(
        ours.faces[0].lm478[:, 2], theirs.faces[0].lm478[:, 2] - theirs.faces[0].lm478[:, 2].mean(), atol=1e-3
    )


def test_faces_round_trip_through_the_core_payload(t1_faces):
    frame, faces = t1_faces
    from facecontrol.face.types import FaceSet

    face_set = FaceSet([faces[0], None, faces[3]], frame.shape[:2], "mediapipe", [])
    payload = core_landmarks.core_payload(face_set)
    assert [len(f) for f in payload["frames"]] == [1, 0, 1]
    assert payload["frames"][0][0]["landmarks_xy"].shape == (478, 2)
    assert {"face_oval", "lips", "left_eye", "right_eye", "irises", "nose", "contours", "all"} <= set(
        payload["connection_sets"]
    )
    assert all(a < 478 and b < 478 for a, b in payload["connection_sets"]["all"])
    frames, _, _ = core_landmarks.faces_from_core(payload)
    np.testing.assert_allclose(frames[2][0].lm68, faces[3].lm68, atol=1e-3)
    with pytest.raises(ValueError, match=r"no face found in frame 1 of 'face_landmarks'"):
        back = select_over_frames(3, frame.shape[:2], lambda i: frames[i], lambda i, box: frames[i], Selection())
        finish_selection(back, Selection(), "error", "face_landmarks")


def test_not_a_core_payload_is_refused_by_name():
    with pytest.raises(ValueError, match=r"'face_landmarks' is not ComfyUI's FACE_LANDMARKS"):
        core_landmarks.check_payload({"faces": []}, "face_landmarks")
    bad = {"frames": [[{"landmarks_xy": np.zeros((68, 2))}]], "image_size": (10, 10)}
    with pytest.raises(ValueError, match=r"frame 0: a face's landmarks_xy is \(68, 2\)"):
        core_landmarks.check_payload(bad, "face_landmarks")
