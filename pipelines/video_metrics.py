"""The former DVA metrics module, kept for scripts that import it: everything lives in pipelines/metrics.py.

``identity_consistency`` here takes (N,3,H,W) [0,1] tensors and an embedder callable; ``dlib_identity`` gives
dlib's descriptor on dlib's own chip (metrics.DlibChipIdentity), no longer on the resized crop.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .metrics import MS_SSIM_WEIGHTS, DlibChipIdentity, ms_ssim, mse, ssim, tg_id, tl_id

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

Embedder = Callable[[torch.Tensor], torch.Tensor]


def _uint8(frames: torch.Tensor) -> np.ndarray:
    return (frames.permute(0, 2, 3, 1).clamp(0, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)


def identity_consistency(edited: torch.Tensor, original: torch.Tensor, embed: Embedder) -> dict[str, float]:
    if len(edited) != len(original) or len(edited) < 2:
        raise ValueError(f"TL-ID/TG-ID need two videos of equal length >= 2, got {len(edited)} and {len(original)}")
    e, o = embed(edited), embed(original)
    return {"TL-ID": tl_id(e, o), "TG-ID": tg_id(e, o)}


def dlib_identity(model_path: str, predictor_path: str | None = None) -> Embedder:
    """dlib's descriptor on dlib's aligned chip of each (N,3,H,W) [0,1] frame."""
    net = DlibChipIdentity(model_path, predictor_path or _package_file("shape_predictor_5_face_landmarks.dat"))
    return lambda frames: net.embed(_uint8(frames))


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
