"""PIE's 3DMM image formation on the Basel Face Model (``BFM_model_front.mat``) with Deep3DFaceRecon's
regressor (``epoch_20.pth``), as the issue names it: theta = (rotation, translation, identity 80, expression
64, albedo 80, 27 SH). Plain PyTorch; no ComfyUI imports.

The regressor expects Deep3DFaceRecon's ``align_img`` view: 224x224 RGB in [0,1], scaled and shifted so the
face's five points fall on the standard 3D landmarks (``similarity_Lm3D_all.mat``) times 102 around the
centre. PIE works on FFHQ crops, which are already aligned, so one fixed similarity maps the crop to that
view: the one that takes the FFHQ quad of the standard face onto its ``align_img`` position. It is exact
for the standard face; for others the residual scale and shift are what the regressor's translation absorbs
(``align_img`` itself only fits scale and shift, never rotation). Everything downstream (render, landmarks)
is mapped back into crop pixels with the inverse.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...face.align import ffhq_quad_params
from ...face.bfm import BFMProjector
from ...face.geometry import XYZ_FROM_YAW_PITCH_ROLL, YAW_PITCH_ROLL_FROM_XYZ, rotation_matrix
from ...face.render import render_colors
from ...models.d3dfr import split_coeffs
from .formation import FaceFormation, Theta

logger = logging.getLogger(__name__)

VIEW_SIZE = 224  # Deep3DFaceRecon's input
RESCALE_FACTOR = 102.0  # align_img: pixels per BFM unit of the standard landmarks


def standard_view_landmarks(bfm: BFMProjector, standard: np.ndarray | None = None) -> np.ndarray:
    """(68,2) pixels of the standard face in the 224 view (x right, y down).

    With ``standard`` (the 68 points of ``similarity_Lm3D_all.mat``) this is ``align_img``'s placement,
    centre + 102 * (x, -y). Without it, the BFM mean face projected by the model's own camera at zero pose
    and translation stands in for it.
    """
    centre = bfm.image_size / 2
    if standard is not None:
        return np.stack([centre + RESCALE_FACTOR * standard[:, 0], centre - RESCALE_FACTOR * standard[:, 1]], -1)
    zeros = torch.zeros(1, 257, dtype=bfm.meanshape.dtype, device=bfm.meanshape.device)
    return bfm.get_lm68(zeros)[0].double().cpu().numpy()


def ffhq_to_view_matrix(view_landmarks: np.ndarray) -> np.ndarray:
    """(2,3) affine taking FFHQ-crop unit coordinates (0..1 across the crop) to 224-view pixels."""
    c, x, y = (v[0] for v in ffhq_quad_params(view_landmarks[None]))
    return np.stack([2 * x, 2 * y, c - x - y], 1)


class BFMFaceFormation(FaceFormation):
    """Differentiable regressor, renderer and landmark projection over the BFM with Deep3DFaceRecon's camera
    (focal 1015, principal point 112, distance 10, in the 224 view), in the pixels of the FFHQ crop."""

    name = "bfm_deep3dfacerecon"
    kept_keys = ("identity", "expression", "angles", "translation", "texture", "light")
    param_scale = {"angles": 0.2, "expression": 0.5, "light": 0.2, "identity": 1.0, "texture": 1.0, "translation": 0.1}

    def __init__(
        self,
        bfm: BFMProjector,
        regressor: nn.Module,
        landmark_net: nn.Module,
        standard_landmarks: np.ndarray | None = None,
    ) -> None:
        super().__init__(landmark_net)
        if bfm.image_size != VIEW_SIZE:
            raise ValueError(f"the BFM projector must use Deep3DFaceRecon's {VIEW_SIZE} view, not {bfm.image_size}")
        if standard_landmarks is None:
            logger.info(
                "similarity_Lm3D_all.mat not given: the BFM mean face stands in for align_img's standard landmarks"
            )
        self.bfm = bfm
        self.regressor = regressor
        view_from_unit = ffhq_to_view_matrix(standard_view_landmarks(bfm, standard_landmarks))
        unit_from_view = np.linalg.inv(np.vstack([view_from_unit, [0.0, 0.0, 1.0]]))[:2]
        self.register_buffer("view_from_unit", torch.tensor(view_from_unit, dtype=torch.float32))
        self.register_buffer("unit_from_view", torch.tensor(unit_from_view, dtype=torch.float32))

    @property
    def tau_dims(self) -> dict[str, int]:
        return {"pose": 3, "expression": self.bfm.exBase.shape[1], "illumination": 27}

    # -- regression
    def view(self, images: torch.Tensor) -> torch.Tensor:
        """(B,3,S,S) crops in [-1,1] -> (B,3,224,224) Deep3DFaceRecon view in [0,1] (black outside the crop)."""
        size = images.shape[-1]
        crop_pixels_per_view_pixel = size * float(self.unit_from_view[:, :2].norm(dim=0).mean())
        if crop_pixels_per_view_pixel > 1.5:  # shrink first so bilinear sampling does not alias
            size = max(int(round(size / crop_pixels_per_view_pixel)), 8)
            images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        axis = torch.arange(VIEW_SIZE, dtype=images.dtype, device=images.device)
        rows, cols = torch.meshgrid(axis, axis, indexing="ij")
        points = torch.stack([cols, rows, torch.ones_like(cols)], -1)  # view pixel centres
        unit = points @ self.unit_from_view.to(images).T  # (224,224,2) in crop units
        grid = (unit * 2 - 1 + 1 / size).unsqueeze(0).expand(images.shape[0], -1, -1, -1)
        return F.grid_sample((images + 1) / 2, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def regress(self, images: torch.Tensor) -> Theta:
        """(B,3,S,S) [-1,1] FFHQ crops -> theta: identity, expression, texture, angles, light, translation."""
        coeffs = split_coeffs(self.regressor(self.view(images)))
        return {
            "identity": coeffs["id"],
            "expression": coeffs["exp"],
            "texture": coeffs["tex"],
            "angles": coeffs["angle"][:, YAW_PITCH_ROLL_FROM_XYZ],
            "light": coeffs["gamma"],
            "translation": coeffs["trans"],
        }

    # -- geometry
    def _to_crop(self, view_points: torch.Tensor, size: int) -> torch.Tensor:
        """(B,N,2) view pixels (y down) -> crop pixels."""
        matrix = self.unit_from_view.to(view_points)
        return (view_points @ matrix[:, :2].T + matrix[:, 2]) * size

    def _camera(self, theta: Theta) -> tuple[torch.Tensor, torch.Tensor]:
        """Model-space shape and camera-frame vertices (z = distance from the camera)."""
        shape = self.bfm.compute_shape(theta["identity"], theta["expression"])
        angles = theta["angles"][:, XYZ_FROM_YAW_PITCH_ROLL]
        return shape, self.bfm.to_camera(shape, angles, theta["translation"])

    def landmarks(self, theta: Theta, size: int) -> torch.Tensor:
        _, camera = self._camera(theta)
        view = self.bfm.flip_y(self.bfm.project(camera[:, self.bfm.keypoints]))
        return self._to_crop(view, size)

    def render(self, theta: Theta, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        shape, camera = self._camera(theta)
        view = self.bfm.flip_y(self.bfm.project(camera))
        screen = torch.cat([self._to_crop(view, size), camera[..., 2:]], -1)
        rotation = rotation_matrix(theta["angles"])
        normals = self.bfm.compute_normals(shape) @ rotation.transpose(1, 2)
        colours = self.bfm.compute_color(self.bfm.compute_texture(theta["texture"]), normals, theta["light"])
        image, mask, _ = render_colors(screen, self.bfm.face_buf, colours, (size, size))
        return image, mask
