"""Basel Face Model (BFM09, Deep3DFaceRecon's ``BFM_model_front.mat``) shape, projection and shading.

Conventions follow Face-Adapter/Deep3DFaceRecon: coefficients in the 257(+4 gaze) layout, rotation
R = Rz @ Ry @ Rx from Euler angles (x, y, z radians), camera at ``camera_distance`` looking down -z
(z_cam = d - z), pinhole with the principal point at image_size/2. ``get_lm68`` returns pixels with y
flipped (image_size - 1 - y) as Face-Adapter draws them; ``project`` keeps the unflipped y.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy.io import loadmat

from ..models.checkpoint import reading_model_file
from .geometry import rotation_matrix_xyz

FACE_ADAPTER_FOCAL = 1015.0 * 256 / 224
FACE_ADAPTER_IMAGE_SIZE = 256
ID_DIM = 80

_OPTIONAL_INDEX_KEYS = {"frontmask2_idx": "front_mask", "tri_mask2": "front_face_buf"}


def _float_buffer(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array)).float()


def _index_buffer(array: np.ndarray) -> torch.Tensor:
    """The .mat stores 1-based indices as floats; return 0-based int64."""
    return torch.from_numpy(np.rint(np.asarray(array, dtype=np.float64))).long() - 1


def recombine_identity(coeff_src: torch.Tensor, coeff_drive: torch.Tensor, id_dim: int = ID_DIM) -> torch.Tensor:
    """The driver's coefficients with the source's identity-shape block [0:80] (Face-Adapter reenactment)."""
    if coeff_src.shape[0] != coeff_drive.shape[0] and coeff_src.shape[0] != 1:
        raise ValueError(f"batch sizes differ: source {coeff_src.shape[0]}, driver {coeff_drive.shape[0]}")
    out = coeff_drive.clone()
    out[:, :id_dim] = coeff_src[:, :id_dim].to(out)
    return out


def load_standard_landmarks(path: str | Path) -> np.ndarray:
    """Deep3DFaceRecon's ``similarity_Lm3D_all.mat`` -> (68,3) standard 3D landmarks (plain arrays, no code)."""
    with reading_model_file(path, "MATLAB file"):
        points = np.asarray(loadmat(str(path))["lm"], np.float64)
    if points.shape != (68, 3):
        raise ValueError(f"{path}: expected 'lm' of shape (68, 3), got {points.shape}")
    return points


class BFMProjector(torch.nn.Module):
    """BFM model from ``BFM_model_front.mat`` with Face-Adapter's camera. All tensors are buffers (follow .to())."""

    def __init__(
        self,
        bfm_model_path: str | Path,
        focal: float = 1015.0,
        image_size: int = 224,
        camera_distance: float = 10.0,
        recenter: bool = True,
    ) -> None:
        super().__init__()
        path = Path(bfm_model_path)
        if not path.is_file():
            raise FileNotFoundError(
                f"BFM model not found: {path} (BFM_model_front.mat from Deep3DFaceRecon/Face-Adapter)"
            )
        with reading_model_file(path, "MATLAB file"):
            mat = loadmat(str(path))
        self._register_shape_model(mat, recenter)
        self._register_topology(mat)
        self.focal = float(focal)
        self.image_size = int(image_size)
        self.camera_distance = float(camera_distance)
        self.register_buffer("init_lit", torch.tensor([0.8, 0, 0, 0, 0, 0, 0, 0, 0]).view(1, 1, 9))

    @classmethod
    def face_adapter(cls, bfm_model_path: str | Path) -> "BFMProjector":
        """Face-Adapter's settings: 256 crops, focal 1015*256/224, distance 10, recentred mean shape."""
        return cls(bfm_model_path, focal=FACE_ADAPTER_FOCAL, image_size=FACE_ADAPTER_IMAGE_SIZE)

    def _register_shape_model(self, mat: dict, recenter: bool) -> None:
        meanshape = _float_buffer(mat["meanshape"]).view(-1, 3)
        if recenter:
            meanshape = meanshape - meanshape.mean(dim=0, keepdim=True)
        self.register_buffer("meanshape", meanshape.reshape(-1, 1))
        self.register_buffer("idBase", _float_buffer(mat["idBase"]))
        self.register_buffer("exBase", _float_buffer(mat["exBase"]))
        self.register_buffer("meantex", _float_buffer(mat["meantex"]).reshape(1, -1))
        self.register_buffer("texBase", _float_buffer(mat["texBase"]))

    def _register_topology(self, mat: dict) -> None:
        self.register_buffer("point_buf", _index_buffer(mat["point_buf"]))
        self.register_buffer("face_buf", _index_buffer(mat["tri"]))
        self.register_buffer("keypoints", _index_buffer(mat["keypoints"]).reshape(68))
        for key, name in _OPTIONAL_INDEX_KEYS.items():
            if key in mat:
                self.register_buffer(name, _index_buffer(np.squeeze(mat[key])))
        if "skinmask" in mat:
            self.register_buffer("skin_mask", _float_buffer(np.squeeze(mat["skinmask"])))

    @property
    def num_vertices(self) -> int:
        return self.meanshape.shape[0] // 3

    def compute_shape(self, id_coeff: torch.Tensor, exp_coeff: torch.Tensor) -> torch.Tensor:
        """(B,80) identity and (B,64) expression coefficients -> (B,N,3) model-space vertices."""
        id_part = torch.einsum("ij,aj->ai", self.idBase, id_coeff)
        exp_part = torch.einsum("ij,aj->ai", self.exBase, exp_coeff)
        shape = id_part + exp_part + self.meanshape.view(1, -1)
        return shape.view(id_coeff.shape[0], -1, 3)

    def to_camera(self, shape: torch.Tensor, angles: torch.Tensor, trans: torch.Tensor) -> torch.Tensor:
        """Rotate, translate and move into the camera frame (z_cam = distance - z): (B,N,3)."""
        posed = shape @ rotation_matrix_xyz(angles).transpose(1, 2) + trans.unsqueeze(1)
        return torch.cat([posed[..., :2], self.camera_distance - posed[..., 2:]], dim=-1)

    def project(self, vertices_cam: torch.Tensor) -> torch.Tensor:
        """Pinhole projection (B,N,3) -> (B,N,2) pixels, y pointing up (not yet flipped)."""
        persp = vertices_cam @ self._camera_matrix(vertices_cam).T
        return persp[..., :2] / persp[..., 2:]

    def _camera_matrix(self, like: torch.Tensor) -> torch.Tensor:
        f, c = self.focal, self.image_size / 2
        return torch.tensor([[f, 0.0, c], [0.0, f, c], [0.0, 0.0, 1.0]], dtype=like.dtype, device=like.device)

    def flip_y(self, points: torch.Tensor) -> torch.Tensor:
        """Projected pixels -> image rows counted from the top (image_size - 1 - y)."""
        return torch.stack([points[..., 0], self.image_size - 1 - points[..., 1]], dim=-1)

    def vertices(self, coeffs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Full geometry from (B,257+) coefficients: model-space shape, camera-space vertices, projection (y up)."""
        coeffs = coeffs.to(self.meanshape)
        shape = self.compute_shape(coeffs[:, 0:80], coeffs[:, 80:144])
        vertices_cam = self.to_camera(shape, coeffs[:, 224:227], coeffs[:, 254:257])
        return {"shape": shape, "vertices_cam": vertices_cam, "projected": self.project(vertices_cam)}

    def get_lm68(self, coeffs: torch.Tensor) -> torch.Tensor:
        """(B,257+) coefficients -> (B,68,2) landmark pixels in the crop, y flipped (row from the top)."""
        return self.flip_y(self.vertices(coeffs)["projected"][:, self.keypoints])

    def compute_texture(self, tex_coeff: torch.Tensor) -> torch.Tensor:
        """(B,80) albedo coefficients -> (B,N,3) RGB albedo in [0,1] (nominally)."""
        texture = torch.einsum("ij,aj->ai", self.texBase, tex_coeff) + self.meantex
        return (texture / 255.0).view(tex_coeff.shape[0], -1, 3)

    def compute_normals(self, shape: torch.Tensor) -> torch.Tensor:
        """(B,N,3) vertices -> (B,N,3) unit vertex normals (sum of adjacent face normals)."""
        v1, v2, v3 = (shape[:, self.face_buf[:, i]] for i in range(3))
        face_normals = F.normalize(torch.cross(v1 - v2, v2 - v3, dim=-1), dim=-1)
        # point_buf pads short neighbour lists with index F (one past the last face): a zero normal there
        padded = torch.cat([face_normals, face_normals.new_zeros(shape.shape[0], 1, 3)], dim=1)
        return F.normalize(padded[:, self.point_buf].sum(dim=2), dim=-1)

    def compute_color(self, albedo: torch.Tensor, normals: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
        """Lambertian shading with 3-band spherical-harmonics light (B,27) + init_lit -> (B,N,3) colour."""
        light = (gamma.view(-1, 3, 9) + self.init_lit).permute(0, 2, 1)  # (B,9,3)
        return (_sh_basis(normals) @ light) * albedo


def _sh_basis(n: torch.Tensor) -> torch.Tensor:
    a = (math.pi, 2 * math.pi / math.sqrt(3.0), 2 * math.pi / math.sqrt(8.0))
    c = (
        1 / math.sqrt(4 * math.pi),
        math.sqrt(3.0) / math.sqrt(4 * math.pi),
        3 * math.sqrt(5.0) / math.sqrt(12 * math.pi),
    )
    x, y, z = n[..., :1], n[..., 1:2], n[..., 2:]
    return torch.cat(
        [
            a[0] * c[0] * torch.ones_like(x),
            -a[1] * c[1] * y,
            a[1] * c[1] * z,
            -a[1] * c[1] * x,
            a[2] * c[2] * x * y,
            -a[2] * c[2] * y * z,
            0.5 * a[2] * c[2] / math.sqrt(3.0) * (3 * z**2 - 1),
            -a[2] * c[2] * x * z,
            0.5 * a[2] * c[2] * (x**2 - y**2),
        ],
        dim=-1,
    )
