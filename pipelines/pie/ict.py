"""PIE's 3DMM image formation on the open ICT-FaceKit model (the default backend).

``regress`` turns images into parameters theta (differentiably): 68 landmarks from a landmark network
(MobileNetV2-GDConv), a closed-form weak-perspective pose and a ridge solve for identity and expression,
27 SH lighting fitted to the image colours at the visible vertices, and a per-vertex albedo (ICT has
none) = image colour / irradiance under that lighting. ``render`` rasterises theta with
:mod:`facecontrol.face.render`. ``landmarks`` projects the 68 landmark vertices.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...face.geometry import matrix_to_angles
from ...face.ict_model import ICTFaceModel, ict_landmarks, ict_render, ict_screen
from ...face.render import INIT_LIGHT, sh_basis, sh_irradiance
from .formation import FaceFormation, Theta


class ICTFaceFormation(FaceFormation):
    """Differentiable regressor, renderer and landmark projection over the dense ICT-FaceKit mesh.

    Camera: weak perspective as in :mod:`facecontrol.face.ict_fit` (u = s X + tx, v = ty - s Y after
    rotation), in pixels of the image being analysed. ``scale`` and ``translation`` in theta are stored
    relative to the image size so theta means the same at any resolution.
    """

    name = "ict_facekit"
    #: light carries shading, albedo colour (True); False, the default, keeps the former grey-albedo fit. Re-judged on
    #: the face generator, True lands pose as before and turns the head less in a light edit (docs/PIE.md), but the
    #: filled-weight server workflow's yaw edit reached +4 of 15 deg under it on torch 2.9.1 (> 7.5 under False)
    colour_in_albedo = False
    kept_keys = ("identity", "expression", "angles", "scale", "translation", "light")
    param_scale = {"angles": 0.2, "expression": 0.3, "light": 0.2, "identity": 1.0, "scale": 0.1, "translation": 0.05}

    def __init__(
        self,
        model: ICTFaceModel,
        landmark_net: nn.Module,
        identity_ridge: float = 0.05,
        expression_ridge: float = 0.2,
        light_ridge: float = 1e-3,
    ) -> None:
        super().__init__(landmark_net)
        if model.triangles is None:
            raise ValueError(
                "the ICT model has no triangles: load face_model.npz (the dense mesh), not landmarks_model.npz"
            )
        self.model = model
        self.exp_names = list(model.exp_names)
        self.identity_ridge, self.expression_ridge, self.light_ridge = identity_ridge, expression_ridge, light_ridge
        self.register_buffer("faces", model.triangles_skin if model.triangles_skin is not None else model.triangles)

    @property
    def tau_dims(self) -> dict[str, int]:
        return {"pose": 3, "expression": self.model.exp_basis.shape[0], "illumination": 27}

    # -- geometry
    def fit_geometry(self, landmarks: torch.Tensor, size: int) -> Theta:
        """Closed-form differentiable fit: pose from an affine camera made orthonormal, then a ridge solve
        for identity and expression under that pose, then the pose again."""
        mean = self.model.lmk_mean.to(landmarks)
        id_basis = self.model.lmk_id_basis.to(landmarks)
        exp_basis = self.model.lmk_exp_basis.to(landmarks)
        target = torch.stack([landmarks[..., 0], -landmarks[..., 1]], -1)  # y up
        shape = mean.expand(landmarks.shape[0], -1, -1)
        identity = expression = None
        for _ in range(2):
            rotation, scale, translation = _weak_perspective_pose(shape, target)
            identity, expression = self._ridge_shape(target, rotation, scale, translation, mean, id_basis, exp_basis)
            shape = (
                mean
                + torch.einsum("bk,kpc->bpc", identity, id_basis)
                + torch.einsum("bk,kpc->bpc", expression, exp_basis)
            )
        rotation, scale, translation = _weak_perspective_pose(shape, target)
        return {
            "identity": identity,
            "expression": expression,
            "angles": matrix_to_angles(rotation),
            "scale": (scale / size).unsqueeze(-1),
            "translation": torch.stack([translation[:, 0], -translation[:, 1]], -1) / size,
        }

    def _ridge_shape(self, target, rotation, scale, translation, mean, id_basis, exp_basis):
        projection = rotation[:, :2] * scale[:, None, None]  # (B,2,3)
        residual = target - translation[:, None] - mean @ projection.transpose(1, 2)  # (B,68,2)
        basis = torch.cat([id_basis, exp_basis], 0)  # (K,68,3)
        design = torch.einsum("bij,kpj->bpik", projection, basis).flatten(1, 2)  # (B,136,K)
        num_id = id_basis.shape[0]
        norm = (scale**2)[:, None] * 68
        ridge = torch.cat(
            [torch.full((num_id,), self.identity_ridge), torch.full((basis.shape[0] - num_id,), self.expression_ridge)]
        )
        lhs = design.transpose(1, 2) @ design + torch.diag_embed(ridge.to(design) * norm)
        rhs = design.transpose(1, 2) @ residual.flatten(1).unsqueeze(-1)
        solution = solve_normal_equations(lhs, rhs).squeeze(-1)
        return solution[:, :num_id], solution[:, num_id:]

    def posed(self, theta: Theta, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Screen vertices (B,V,3: x, y pixels, depth away from the camera) and camera-frame unit normals."""
        return ict_screen(self.model, self.faces, theta, size)

    def landmarks(self, theta: Theta, size: int) -> torch.Tensor:
        return ict_landmarks(self.model, theta, size)

    # -- appearance
    def fit_appearance(self, images: torch.Tensor, theta: Theta) -> Theta:
        """Add SH lighting (27) and per-vertex albedo estimated from the image (differentiable).

        Light carries the shading and the albedo the colour: the light is the same for R, G and B with its
        band 0 at the 0.8 ambient (offset 0), so a face's skin colour and overall brightness end up in the
        albedo (scaling an image's colours scales the albedo and leaves the light as it was)."""
        size = images.shape[-1]
        screen, normals = self.posed(theta, size)
        grid = (screen[..., :2] + 0.5) / size * 2 - 1
        colours = F.grid_sample((images + 1) / 2, grid.unsqueeze(2), align_corners=False).squeeze(-1).transpose(1, 2)
        inside = ((grid.abs() < 1).all(-1)).to(images)
        weight = (normals[..., 2].clamp_min(0) * inside).detach()  # front-facing, inside the image
        basis = sh_basis(normals)  # (B,V,9)
        weighted = basis * weight.unsqueeze(-1)
        lhs = weighted.transpose(1, 2) @ basis + self.light_ridge * torch.eye(9, dtype=basis.dtype, device=basis.device)
        coeffs = torch.linalg.solve(lhs, weighted.transpose(1, 2) @ colours)  # (B,9,3): grey albedo 1
        light = achromatic_light(coeffs) if self.colour_in_albedo else _grey_albedo_light(coeffs)
        irradiance = sh_irradiance(normals, light).clamp_min(1e-2)
        albedo = colours / irradiance
        mean_albedo = (albedo * weight.unsqueeze(-1)).sum(1, keepdim=True) / weight.sum(1, keepdim=True).clamp_min(
            1e-6
        ).unsqueeze(-1)
        visible = (weight > 0.05).unsqueeze(-1)
        albedo = torch.where(visible, albedo, mean_albedo).clamp(0.0, 2.0)
        return {**theta, "light": light, "albedo": albedo}

    def regress(self, images: torch.Tensor) -> Theta:
        """(B,3,H,W) [-1,1] -> theta with identity, expression, angles, scale, translation, light, albedo."""
        geometry = self.fit_geometry(self.image_landmarks(images), images.shape[-1])
        return self.fit_appearance(images, geometry)

    def render(self, theta: Theta, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        return ict_render(self.model, self.faces, theta, size)


def solve_normal_equations(lhs: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """Solve ridge normal equations (symmetric positive definite) by Cholesky. The general LU solve of torch 2.14.1
    failed on these batches ("Pivots given to lu_solve must all be greater or equal to 1", MKL SLASWP errors)
    once a script called torch.set_num_threads(2); LU stays the fallback where Cholesky finds no factor."""
    factor, info = torch.linalg.cholesky_ex(lhs)
    if bool((info != 0).any()):
        return torch.linalg.solve(lhs, rhs)
    return torch.cholesky_solve(rhs, factor)


def achromatic_light(coeffs: torch.Tensor) -> torch.Tensor:
    """(B,9,3) SH fitted per colour under a grey albedo -> (B,27) light offsets, the same for R, G and B, with
    band 0 normalised to the 0.8 ambient: the colour mean of the fit, divided by its band 0 over 0.8."""
    shading = coeffs.mean(-1)  # (B,9)
    shading = shading * (INIT_LIGHT / shading[:, :1].clamp_min(1e-3))
    light = shading.unsqueeze(1).expand(-1, 3, -1).clone()
    light[:, :, 0] = light[:, :, 0] - INIT_LIGHT
    return light.reshape(-1, 27)


def _grey_albedo_light(coeffs: torch.Tensor) -> torch.Tensor:
    """The former convention: per-colour SH under albedo 1 (skin colour in the light)."""
    light = coeffs.permute(0, 2, 1).clone()
    light[:, :, 0] = light[:, :, 0] - INIT_LIGHT
    return light.reshape(-1, 27)


def _weak_perspective_pose(shape: torch.Tensor, target: torch.Tensor):
    """Affine camera by least squares, rows made orthonormal by Gram-Schmidt (stable gradients, unlike an
    SVD with two near-equal singular values). shape (B,68,3) model points, target (B,68,2) y-up pixels."""
    centred_shape = shape - shape.mean(1, keepdim=True)
    centred_target = target - target.mean(1, keepdim=True)
    normal = centred_shape.transpose(1, 2) @ centred_shape
    camera = torch.linalg.solve(normal, centred_shape.transpose(1, 2) @ centred_target).transpose(1, 2)  # (B,2,3)
    norms = camera.norm(dim=-1)
    row0 = camera[:, 0] / norms[:, :1]
    row1 = camera[:, 1] - (camera[:, 1] * row0).sum(-1, keepdim=True) * row0
    row1 = row1 / row1.norm(dim=-1, keepdim=True)
    rotation = torch.stack([row0, row1, torch.linalg.cross(row0, row1)], 1)
    scale = norms.mean(-1)
    translation = target.mean(1) - scale[:, None] * (
        shape.mean(1, keepdim=True) @ rotation[:, :2].transpose(1, 2)
    ).squeeze(1)
    return rotation, scale, translation
