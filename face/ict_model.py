"""ICT-FaceKit Light (MIT) linear face model, read from the compact NumPy export.

Conventions (see the export's README): centimetres, right-handed, +y up, +z out of the face towards
a frontal viewer, +x towards the subject's left. ``shape = mean + a @ id_basis + b @ exp_basis`` with
identity ``a`` (100, prior N(0, 1)) and ARKit-style expression weights ``b`` (53, in [0, 1]).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..models.checkpoint import reading_model_file

logger = logging.getLogger(__name__)

NUM_IDENTITY = 100
NUM_EXPRESSION = 53

# Optional integer index arrays of face_model.npz, kept as long buffers when present.
_INDEX_KEYS = (
    "triangles",
    "triangles_skin",
    "region",
    "lmk68_alt_jaw",
    "jawline_ext_right",
    "jawline_ext_left",
    "lmk68_rigid_subset",
    "kept_full_index",
    "lmk68_full",
)


class ICTFaceModel(nn.Module):
    """Linear 3DMM container; all arrays are buffers so ``.to(device)`` moves them.

    Loaded from ``face_model.npz`` it holds the dense mesh (V = 7474); from ``landmarks_model.npz`` it
    holds only the 68 landmark rows (V = 68, ``lmk68`` = arange(68), no triangles).
    """

    def __init__(
        self,
        mean: torch.Tensor,
        id_basis: torch.Tensor,
        exp_basis: torch.Tensor,
        exp_names: list[str],
        lmk68: torch.Tensor,
        extras: dict[str, torch.Tensor] | None = None,
    ) -> None:
        super().__init__()
        self.exp_names = list(exp_names)
        self.register_buffer("mean", mean.float())
        self.register_buffer("id_basis", id_basis.float())
        self.register_buffer("exp_basis", exp_basis.float())
        self.register_buffer("lmk68", lmk68.long())
        extras = extras or {}
        for key in _INDEX_KEYS:  # absent ones stay None (e.g. no triangles in landmarks_model.npz)
            self.register_buffer(key, extras[key].long() if key in extras else None)
        self.register_buffer("lmk_mean", self.mean[self.lmk68].clone())
        self.register_buffer("lmk_id_basis", self.id_basis[:, self.lmk68].clone())
        self.register_buffer("lmk_exp_basis", self.exp_basis[:, self.lmk68].clone())

    @property
    def num_vertices(self) -> int:
        return self.mean.shape[0]

    def expression_index(self, name: str) -> int:
        """Position of an expression blendshape (e.g. ``"jawOpen"``) in ``exp_basis``."""
        return self.exp_names.index(name)

    def shape(self, identity: torch.Tensor, expression: torch.Tensor) -> torch.Tensor:
        """(B,100), (B,53) -> (B,V,3) vertices in cm."""
        return _combine(self.mean, self.id_basis, self.exp_basis, identity, expression)

    def landmarks3d(self, identity: torch.Tensor, expression: torch.Tensor) -> torch.Tensor:
        """(B,100), (B,53) -> (B,68,3) iBUG-68 landmark vertices in cm."""
        return _combine(self.lmk_mean, self.lmk_id_basis, self.lmk_exp_basis, identity, expression)


def _combine(
    mean: torch.Tensor,
    id_basis: torch.Tensor,
    exp_basis: torch.Tensor,
    identity: torch.Tensor,
    expression: torch.Tensor,
) -> torch.Tensor:
    identity = identity.to(mean)
    expression = expression.to(mean)
    id_offset = torch.einsum("bk,kvc->bvc", identity, id_basis)
    exp_offset = torch.einsum("bk,kvc->bvc", expression, exp_basis)
    return mean.unsqueeze(0) + id_offset + exp_offset


def load_ict_model(path: str | Path) -> ICTFaceModel:
    """Read ``face_model.npz`` or ``landmarks_model.npz`` (no pickle) into an :class:`ICTFaceModel`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ICT-FaceKit model file not found: {path}")
    with reading_model_file(path, "npz arrays"), np.load(path, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    for key in ("mean", "id_basis", "exp_basis", "exp_names"):
        if key not in arrays:
            raise ValueError(f"{path} is not an ICT-FaceKit export: key {key!r} missing")
    num_vertices = arrays["mean"].shape[0]
    lmk68 = arrays["lmk68"] if "lmk68" in arrays else np.arange(num_vertices)
    extras = {k: torch.from_numpy(arrays[k].astype(np.int64)) for k in _INDEX_KEYS if k in arrays}
    model = ICTFaceModel(
        mean=torch.from_numpy(arrays["mean"]),
        id_basis=torch.from_numpy(arrays["id_basis"]),
        exp_basis=torch.from_numpy(arrays["exp_basis"]),
        exp_names=[str(name) for name in arrays["exp_names"]],
        lmk68=torch.from_numpy(np.asarray(lmk68, dtype=np.int64)),
        extras=extras,
    )
    logger.debug("loaded ICT-FaceKit model %s: %d vertices", path, num_vertices)
    return model


def ict_screen(
    model: ICTFaceModel, faces: torch.Tensor, theta: dict[str, torch.Tensor], size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Screen vertices (B,V,3: x, y pixels, depth away from the camera) and camera-frame unit normals of
    theta (identity, expression, angles, and ``scale``/``translation`` relative to the image size)."""
    from .geometry import weak_perspective
    from .render import vertex_normals

    shape = model.shape(theta["identity"], theta["expression"])
    rotated, uv = weak_perspective(shape, theta["angles"], theta["scale"] * size, theta["translation"] * size)
    return torch.cat([uv, -rotated[..., 2:]], -1), vertex_normals(rotated, faces)


def ict_landmarks(model: ICTFaceModel, theta: dict[str, torch.Tensor], size: int) -> torch.Tensor:
    """(B,68,2) projected landmark vertices in pixels."""
    from .geometry import weak_perspective

    shape = model.landmarks3d(theta["identity"], theta["expression"])
    return weak_perspective(shape, theta["angles"], theta["scale"] * size, theta["translation"] * size)[1]


def ict_render(
    model: ICTFaceModel, faces: torch.Tensor, theta: dict[str, torch.Tensor], size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """theta -> ``albedo * SH irradiance`` rendered in [0,1] (B,3,S,S) and the face mask (B,1,S,S)."""
    from .render import render_colors, sh_irradiance

    screen, normals = ict_screen(model, faces, theta, size)
    colours = theta["albedo"] * sh_irradiance(normals, theta["light"])
    image, mask, _ = render_colors(screen, faces, colours, (size, size))
    return image, mask
