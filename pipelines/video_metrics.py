"""The former DVA metrics module, kept for scripts that import it: everything lives in pipelines/metrics.py.

``identity_consistency`` is metrics.identity_consistency ((N,H,W,3) uint8 frames and an identity network);
``dlib_identity`` gives that network for dlib's descriptor on dlib's own chip (metrics.DlibChipIdentity).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from .metrics import MS_SSIM_WEIGHTS, DlibChipIdentity, identity_consistency, ms_ssim, mse, ssim, tg_id, tl_id

__all__ = [
    "ssim",
    "ms_ssim",
    "mse",
    "tl_id",
    "tg_id",
    "identity_consistency",
    "dlib_identity",
    "dlib_descriptor_file",
    "MS_SSIM_WEIGHTS",
]


def dlib_identity(model_path: str, predictor_path: str | None = None) -> DlibChipIdentity:
    """dlib's descriptor on dlib's aligned chip of each (N,H,W,3) uint8 frame."""
    return DlibChipIdentity(model_path, predictor_path or _package_file("shape_predictor_5_face_landmarks.dat"))


def _package_file(name: str) -> str:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{name}: the face_recognition_models package is not installed")
    return str(Path(list(spec.submodule_search_locations)[0]) / "models" / name)


def dlib_descriptor_file() -> str | None:
    """dlib_face_recognition_resnet_model_v1.dat from the face_recognition_models package, if installed."""
    try:
        path = _package_file("dlib_face_recognition_resnet_model_v1.dat")
    except FileNotFoundError:
        return None
    return path if Path(path).is_file() else None
