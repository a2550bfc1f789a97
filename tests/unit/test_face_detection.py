"""Face detection, landmark conventions and selection on the real test media."""
import logging

import numpy as np
import pytest

from facecontrol.face.types import head_angles_degrees
from facecontrol.face.select import Selection, choose_face, detect_face_set, order_faces
from media import load_rgb, load_video_rgb
from face_test_utils import dlib_landmarks

log = logging.getLogger(__name__)


def test_astronaut_has_one_face(detector):
    faces = detector.detect(load_rgb("astronaut.png"))
    assert len(faces) == 1
    face = faces[0]
    assert face.lm478.shape == (478, 3) and face.lm68.shape == (68, 2) and face.lm5.shape == (5, 2)
    assert face.blendshapes.shape == (52,) and face.head_transform.shape == (4, 4)
    # the face sits in the upper middle of the photo
    assert 150 < face.center[0] < 300 and 60 < face.center[1] < 200


def test_t1_has_six_faces(detector):
    faces = detector.detect(load_rgb("t1.jpg"))
    assert len(faces) == 6, [f.box for f in faces]
    boxes = np.stack([f.box for f in faces])
    widths = boxes[:, 2] - boxes[:, 0]
    assert (widths > 60).all() and (widths < 250).all()


def test_mediapipe_68_agrees_with_dlib(detector):
    """Mean distance to dlib's 68-point predictor below 5% of the inter-ocular distance.

    Faces turned further than 45 degrees are reported but not averaged: there dlib puts the jaw on the
    visible silhouette while a mesh vertex stays on the hidden cheek (t1.jpg has one at about -57).
    """
    errors = []
    for name in ("astronaut.png", "t1.jpg"):
        image = load_rgb(name)
        ours = detector.detect(image)
        for ref in dlib_landmarks(image):
            match = min(ours, key=lambda f: np.linalg.norm(f.lm68.mean(0) - ref.mean(0)))
            iod = np.linalg.norm(ref[45] - ref[36])
            if np.linalg.norm(match.lm68.mean(0) - ref.mean(0)) > iod:
                log.info("%s: dlib face at %s has no mediapipe face nearby (a dlib false positive?)", name, ref.mean(0))
                continue
            error = np.linalg.norm(match.lm68 - ref, axis=1).mean() / iod
            yaw = head_angles_degrees(match.head_transform)[0]
            if abs(yaw) > 45:
                log.info("%s: face at %s, yaw %.0f: %.4f IOD (not averaged)", name, match.center, yaw, error)
                continue
            errors.append(error)
    errors = np.array(errors)
    log.info("mediapipe vs dlib 68 points: mean %.4f IOD over %d faces (max %.4f)", errors.mean(), len(errors), errors.max())
    assert len(errors) >= 5
    assert errors.mean() < 0.05


def test_selection_orders_and_closest(detector):
    image = load_rgb("t1.jpg")
    faces = detector.detect(image)
    xs = [f.center[0] for f in order_faces(faces, "left-right")]
    assert xs == sorted(xs)
    first = choose_face(faces, Selection("index", 0, "left-right"), image.shape[:2])
    assert first.center[0] == min(xs)
    last = choose_face(faces, Selection("index", 0, "right-left"), image.shape[:2])
    assert last.center[0] == max(xs)
    assert choose_face(faces, Selection("index", 6), image.shape[:2]) is None
    near = choose_face(faces, Selection("closest", position=(1.0, 0.0)), image.shape[:2])
    assert near.center[0] > 800 and near.center[1] < 250  # the top-right face
    with pytest.raises(ValueError, match="face selection"):
        Selection("biggest")


def test_video_tracking_keeps_the_face(detector):
    frames = load_video_rgb(max_frames=30)
    face_set = detect_face_set(frames, detector, Selection("largest"))
    assert face_set.missing == []
    centres = np.stack([f.center for f in face_set.faces])
    steps = np.linalg.norm(np.diff(centres, axis=0), axis=1)
    assert steps.max() < 10  # no jump to another face or a false detection


def test_frame_without_face_is_reported(detector):
    frames = load_video_rgb(max_frames=3).copy()
    frames[1] = 0
    face_set = detect_face_set(frames, detector, Selection("largest"))
    assert face_set.missing == [1]
    assert "no face in frames [1]" in face_set.describe()
    with pytest.raises(ValueError, match="no face in frame 1 of 'image'"):
        face_set.require(1, "image")
