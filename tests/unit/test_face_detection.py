"""Face detection, landmark conventions and selection on the real test media."""

import logging

import numpy as np
import pytest

from facecontrol.face.select import Selection, choose_face, detect_face_set, missing_faces_message, order_faces
from facecontrol.face.types import head_angles_degrees

from face_test_utils import dlib_landmarks
from media import load_rgb, load_video_rgb

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
    log.info(
        "mediapipe vs dlib 68 points: mean %.4f IOD over %d faces (max %.4f)", errors.mean(), len(errors), errors.max()
    )
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
    with pytest.raises(ValueError, match="negative values do not count from the end"):
        Selection("index", -1)
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


def _matched_boxes(found, expected):
    """For each expected box, the IoU of the best found box."""
    from facecontrol.face.detect_mediapipe import box_iou

    return [max(box_iou(f.box, box) for f in found) for box in expected]


@pytest.mark.parametrize("scale", [2, 3])
def test_t1_upscaled_finds_the_same_six_faces(detector, scale):
    import cv2

    image = load_rgb("t1.jpg")
    base = [f.box for f in detector.detect(image)]
    big = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    faces = detector.detect(big)
    assert len(faces) == 6, [np.round(f.box / scale) for f in faces]
    assert min(_matched_boxes(faces, [b * scale for b in base])) > 0.85


@pytest.mark.parametrize("layout", ["4096 px canvas", "2x2 mosaic"])
def test_faces_of_100_px_in_large_photos_are_found(detector, layout):
    """The probe's finding: ~100 px faces were missed in photos of 2048 px and more (2 of 6 at 3072, none
    at 4096, 19 of 24 in the 2560 px mosaic before the tile pyramid)."""
    image = load_rgb("t1.jpg")
    h, w = image.shape[:2]
    base = [f.box for f in detector.detect(image)]
    if layout == "2x2 mosaic":
        photo = np.tile(image, (2, 2, 1))
        expected = [b + np.array([dx, dy, dx, dy]) for b in base for dx in (0, w) for dy in (0, h)]
    else:
        photo = np.full((2835, 4096, 3), 128, np.uint8)
        photo[:h, :w] = image
        expected = base
    faces = detector.detect(photo)
    assert len(faces) == len(expected)
    # the same faces: IoU over 0.5 (the mesh fitted to t1's face turned by 57 degrees shifts with what lies beside it)
    assert min(_matched_boxes(faces, expected)) > 0.5


def test_out_of_range_index_says_how_many_faces_were_found(detector):
    selection = Selection("index", 7)
    face_set = detect_face_set(load_rgb("t1.jpg")[None], detector, selection)
    assert face_set.missing == [0] and face_set.found_unselected == {0: 6}
    message = missing_faces_message(face_set, selection)
    assert "index 7 of 6 faces found in frame 0 of 'image'" in message and "use 0 to 5" in message
    assert "no face found" not in message
    empty = detect_face_set(np.zeros((1, 64, 64, 3), np.uint8), detector, selection)
    assert "no face found in frame 0 of 'image'" in missing_faces_message(empty, selection)
