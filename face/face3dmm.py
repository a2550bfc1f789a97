"""One 3DMM type for both backends (the ComfyUI type FACE_3DMM): fit, recombine, project.

Every frame's coefficients live in that frame's 256 ArcFace-template crop (Face-Adapter's 3DMM canvas):
the BFM backend regresses them from that crop as Face-Adapter does, and the open ICT-FaceKit backend fits
landmarks mapped into the same crop. ``canvas`` (B,2,3) maps frame pixels to that crop, so projected
landmarks can be drawn on a 256 canvas and warped into any other crop exactly as the authors draw them.

Coefficients are grouped into parts that recombination moves as a whole:
identity (face shape), expression, pose (rotation, translation, scale), gaze, and for BFM the
appearance (texture, lighting), which only matters for rendering.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from . import ict_fit
from .gaze import gaze_from_iris
from .temporal import smooth_over_frames
from .types import FaceSet, apply_affine

log = logging.getLogger(__name__)

BACKENDS = ("ict_facekit", "bfm_d3dfr")
CANVAS_SIZE = 256

PARTS: dict[str, dict[str, tuple[str, ...]]] = {
    "ict_facekit": {
        "identity": ("identity",),
        "expression": ("expression",),
        "pose": ("angles", "scale", "translation"),
        "gaze": ("gaze",),
    },
    "bfm_d3dfr": {
        "identity": ("identity",),
        "expression": ("expression",),
        "pose": ("angles", "translation"),
        "gaze": ("gaze",),
        "appearance": ("texture", "lighting"),
    },
}

# What each recombination mode takes from the driver; everything else comes from the source.
RECOMBINE_MODES: dict[str, frozenset[str]] = {
    # Face-Adapter: the driver's coefficients with only the source's 80 identity-shape values.
    "expression, pose and gaze (Face-Adapter)": frozenset({"expression", "pose", "gaze", "appearance"}),
    "pose only": frozenset({"pose"}),
    "expression and gaze only": frozenset({"expression", "gaze"}),
}


@dataclass
class Face3DMM:
    """Per-frame 3DMM coefficients of one face (frames share an identity when ``identity_index`` says so)."""

    backend: str
    coeffs: dict[str, torch.Tensor]  # name -> (B, k), see PARTS
    canvas: np.ndarray  # (B,2,3) frame pixels -> 256 canvas of the frame the pose belongs to
    image_size: tuple[int, int]  # (H, W) of those frames
    model: Any = field(repr=False)  # ICTFaceModel or BFMProjector
    identity_index: torch.Tensor | None = None  # (B,) frames with one value share one identity

    def __len__(self) -> int:
        return int(self.coeffs["identity"].shape[0])

    @property
    def parts(self) -> dict[str, tuple[str, ...]]:
        return PARTS[self.backend]

    def landmarks(self) -> torch.Tensor:
        """(B,68,2) projected iBUG-68 landmarks in 256-canvas pixels."""
        c = self.coeffs
        if self.backend == "ict_facekit":
            return ict_fit.project_landmarks(
                self.model, c["identity"], c["expression"], c["angles"], c["scale"].reshape(-1), c["translation"]
            )
        return self.model.get_lm68(bfm_vector(c))

    def landmarks_in_frame(self) -> np.ndarray:
        """(B,68,2) projected landmarks in the pixels of the frames the pose belongs to."""
        inverse = _invert(self.canvas)
        points = self.landmarks().detach().cpu().double().numpy()
        return np.stack([apply_affine(m, p) for m, p in zip(inverse, points)])

    def head_pose_degrees(self) -> np.ndarray:
        """(B,3) yaw, pitch, roll in degrees (backend conventions; see describe())."""
        angles = self.coeffs["angles"].detach().cpu().double().numpy()
        if self.backend == "bfm_d3dfr":
            angles = angles[:, [1, 0, 2]]  # BFM stores Euler (x, y, z) = (pitch, yaw, roll)
        return np.degrees(angles)

    def frames(self, index: torch.Tensor | list[int]) -> "Face3DMM":
        index = torch.as_tensor(index, dtype=torch.long)
        coeffs = {k: v[index.to(v.device)] for k, v in self.coeffs.items()}
        ids = None if self.identity_index is None else self.identity_index[index]
        return replace(self, coeffs=coeffs, canvas=self.canvas[index.numpy()], identity_index=ids)

    def describe(self) -> str:
        pose = self.head_pose_degrees()
        return (
            f"{self.backend}: {len(self)} frame(s), coefficients "
            + ", ".join(f"{k} {tuple(v.shape[1:])}" for k, v in self.coeffs.items())
            + f"; yaw {pose[:, 0].min():.1f}..{pose[:, 0].max():.1f} deg"
        )


def bfm_vector(coeffs: dict[str, torch.Tensor]) -> torch.Tensor:
    """BFM coefficient dict -> (B,261) in Face-Adapter's layout (id, exp, tex, angle, gamma, trans, gaze)."""
    order = ("identity", "expression", "texture", "angles", "lighting", "translation", "gaze")
    return torch.cat([coeffs[k] for k in order], dim=1)


def bfm_dict(vector: torch.Tensor) -> dict[str, torch.Tensor]:
    from ..models.d3dfr import split_coeffs

    parts = split_coeffs(vector)
    names = {
        "id": "identity",
        "exp": "expression",
        "tex": "texture",
        "angle": "angles",
        "gamma": "lighting",
        "trans": "translation",
        "gaze": "gaze",
    }
    out = {names[k]: v.clone() for k, v in parts.items()}
    if "gaze" not in out:  # Deep3DFaceRecon's 257 outputs have no gaze head: eyes look straight
        out["gaze"] = torch.zeros(vector.shape[0], 4, dtype=vector.dtype, device=vector.device)
    return out


# ---------------------------------------------------------------- fitting


def arcface_canvas(faces: FaceSet, input_name: str = "faces") -> np.ndarray:
    """(B,2,3) frame -> 256 ArcFace-template crop of each frame's face (Face-Adapter's 3DMM crop).

    A least-squares similarity commutes with the 512 crop, so this equals the authors' 512-then-256 chain.
    """
    from .align import arcface_crop

    return arcface_crop(faces.lm5(input_name), faces.image_size, CANVAS_SIZE).forward


def smooth_canvas(canvas: np.ndarray, sigma: float) -> np.ndarray:
    """Smooth the per-frame 256 crops over a video, so smoothed poses are not re-jittered by the crops."""
    return smooth_over_frames(canvas, sigma)


def fit_ict(
    faces: FaceSet,
    model,
    *,
    shared_identity: bool,
    smooth_sigma: float = 0.0,
    input_name: str = "faces",
    canvas: np.ndarray | None = None,
    **fit_options,
) -> Face3DMM:
    """Fit the ICT-FaceKit model to every frame's 68 landmarks (mapped into the frame's 256 canvas; by default
    the one-warp ArcFace canvas of the frame's five points)."""
    canvas = arcface_canvas(faces, input_name) if canvas is None else canvas
    canvas = smooth_canvas(canvas, smooth_sigma)
    lm68 = faces.lm68(input_name)
    lm_canvas = torch.from_numpy(np.stack([apply_affine(m, p) for m, p in zip(canvas, lm68)])).float()
    result = ict_fit.fit_landmarks(
        lm_canvas, model, shared_identity=shared_identity, smooth_sigma=smooth_sigma, **fit_options
    )
    gaze = measured_gaze(faces, canvas, lm_canvas)
    if smooth_sigma > 0:
        gaze = smooth_over_frames(gaze, smooth_sigma)
    coeffs = {
        "identity": result.identity,
        "expression": result.expression,
        "angles": result.angles,
        "scale": result.scale.reshape(-1, 1),
        "translation": result.translation,
        "gaze": gaze.to(result.angles),
    }
    return Face3DMM("ict_facekit", coeffs, canvas, tuple(faces.image_size), model, result.identity_index)


def measured_gaze(faces: FaceSet, canvas: np.ndarray, lm_canvas: torch.Tensor) -> torch.Tensor:
    """(B,4) gaze from mediapipe's iris centres; frames without irises look straight ahead (zeros)."""
    gaze = torch.zeros(len(faces), 4)
    for i, face in enumerate(faces.faces):
        if face is None or face.lm478 is None or len(face.lm478) < 478:
            continue
        iris = torch.from_numpy(apply_affine(canvas[i], face.lm478[:, :2].astype(np.float64))).float()
        gaze[i] = gaze_from_iris(iris[None], lm_canvas[i : i + 1])[0]
    missing = [i for i, f in enumerate(faces.faces) if f is None or f.lm478 is None]
    if missing:
        log.info("no iris landmarks in frame(s) %s: gaze set to straight ahead", missing[:20])
    return gaze


def bfm_from_regressor(
    coeff_vectors: torch.Tensor,
    canvas: np.ndarray,
    image_size: tuple[int, int],
    projector,
    smooth_sigma: float = 0.0,
    shared_identity: bool = False,
) -> Face3DMM:
    """FACE_3DMM from (B,261|257) regressed coefficients of the frames' 256 crops."""
    coeffs = bfm_dict(coeff_vectors.float())
    if shared_identity:
        coeffs["identity"] = coeffs["identity"].mean(0, keepdim=True).expand_as(coeffs["identity"]).clone()
        coeffs["texture"] = coeffs["texture"].mean(0, keepdim=True).expand_as(coeffs["texture"]).clone()
    if smooth_sigma > 0:
        for key in ("expression", "angles", "translation", "gaze"):
            coeffs[key] = smooth_over_frames(coeffs[key], smooth_sigma)
    frames = coeff_vectors.shape[0]
    index = torch.zeros(frames, dtype=torch.long) if shared_identity else torch.arange(frames)
    return Face3DMM("bfm_d3dfr", coeffs, canvas, image_size, projector, index)


# ---------------------------------------------------------------- recombination


def recombine(source: Face3DMM, driver: Face3DMM, mode: str) -> Face3DMM:
    """Source identity with the driver's parts named by ``mode`` (a key of RECOMBINE_MODES).

    Either side may hold one frame (it is repeated) or as many frames as the other. The canvas (and so the
    crop the landmarks are drawn for) follows the pose.
    """
    if mode not in RECOMBINE_MODES:
        raise ValueError(f"unknown recombination {mode!r}; choose one of {list(RECOMBINE_MODES)}")
    if source.backend != driver.backend:
        raise ValueError(
            f"'source' was fitted with {source.backend} and 'driver' with {driver.backend}: "
            "fit both with the same backend"
        )
    n = _common_length(len(source), len(driver))
    source, driver = _repeat_to(source, n), _repeat_to(driver, n)
    from_driver = RECOMBINE_MODES[mode]
    coeffs = {}
    for part, keys in source.parts.items():
        side = driver if part in from_driver else source
        for key in keys:
            coeffs[key] = side.coeffs[key].clone()
    pose_side = driver if "pose" in from_driver else source
    return Face3DMM(
        source.backend, coeffs, pose_side.canvas.copy(), pose_side.image_size, source.model, source.identity_index
    )


def _common_length(a: int, b: int) -> int:
    if a != b and 1 not in (a, b):
        raise ValueError(f"'source' has {a} frames and 'driver' {b}: give one frame or the same number on both sides")
    return max(a, b)


def _repeat_to(fit: Face3DMM, n: int) -> Face3DMM:
    if len(fit) == n:
        return fit
    return fit.frames([0] * n)


def _invert(mats: np.ndarray) -> np.ndarray:
    from .types import invert_affines

    return invert_affines(np.asarray(mats, np.float64))


# ---------------------------------------------------------------- projection into a crop


@dataclass
class CropLandmarks:
    """Projected 68 landmarks + 2 gaze points in crop pixels (the ComfyUI type FACE_LANDMARKS)."""

    points: np.ndarray  # (B,70,2)
    crop_size: int
    convention: str

    def __len__(self) -> int:
        return len(self.points)


def warp_512_to_canvas(fit: Face3DMM, crop_forward: np.ndarray) -> np.ndarray:
    """(B,2,3) crop -> 256 canvas (Face-Adapter's ``warp_mat`` from the 512 crop to the 256 crop)."""
    from .types import compose_affine

    crop_inverse = _invert(crop_forward)
    return np.stack([compose_affine(c, inv) for c, inv in zip(fit.canvas, crop_inverse)])


def project_into_crop(
    fit: Face3DMM, crop_forward: np.ndarray, crop_size: int, convention: str
) -> tuple[np.ndarray, CropLandmarks]:
    """Face-Adapter's 70-point control drawing of ``fit`` in the crop ``crop_forward`` (B,2,3).

    Returns uint8 (B,S,S,3) images and the 70 points in crop pixels.
    """
    from .draw import draw_pts70, pts70

    if len(crop_forward) not in (1, len(fit)):
        raise ValueError(f"'crop' has {len(crop_forward)} frames but 'face_3dmm' has {len(fit)}")
    crop_forward = np.repeat(crop_forward, len(fit), 0) if len(crop_forward) == 1 else crop_forward
    warp = warp_512_to_canvas(fit, crop_forward)
    lm68 = fit.landmarks().detach().float().cpu()
    gaze = fit.coeffs["gaze"].detach().float().cpu()
    images, _ = draw_pts70(lm68, gaze, warp, dst_size=crop_size)
    canvas_points = pts70(lm68, gaze).double().numpy()
    warp_back = _invert(warp)
    points = np.stack([apply_affine(m, p) for m, p in zip(warp_back, canvas_points)])
    return images, CropLandmarks(points, crop_size, convention)
