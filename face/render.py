"""Differentiable mesh rendering in plain PyTorch: z-buffer rasteriser, barycentric interpolation, SH shading.

Screen convention: vertices are given as (x, y, depth) with x, y in pixels (pixel (row i, column j) has
its centre at x = j, y = i) and ``depth`` increasing away from the camera (nearer = smaller).

Rasterising (which triangle covers which pixel) is a discrete choice and carries no gradient. The
barycentric coordinates of each covered pixel are then recomputed from the vertex positions with
autograd on, so interpolated attributes have gradients with respect to both the vertex positions and
the per-vertex attributes (colours), as in nvdiffrast's ``interpolate``. Coverage edges themselves are
not differentiated (no antialiasing term). Barycentrics are linear in screen space, which is exact for
the weak-perspective ICT camera and a close approximation for the BFM pinhole at 10 units distance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .bfm import _sh_basis

INIT_LIGHT = 0.8  # Deep3DFaceRecon's ambient offset on the first SH coefficient of each colour
_MAX_CANDIDATES = 4_000_000  # pixel candidates per rasterising chunk (memory bound)


@dataclass
class Fragments:
    """Per pixel: the covering triangle (-1 for background) and its depth."""

    face_index: torch.Tensor  # (B,H,W) long
    depth: torch.Tensor  # (B,H,W) float, +inf on background

    @property
    def mask(self) -> torch.Tensor:
        """(B,H,W) float coverage."""
        return (self.face_index >= 0).float()


def _edge_barycentrics(tri: torch.Tensor, px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
    """tri (...,3,2+) screen vertices, point (...) -> (...,3) barycentric coordinates (any sign)."""
    x0, y0 = tri[..., 0, 0], tri[..., 0, 1]
    x1, y1 = tri[..., 1, 0], tri[..., 1, 1]
    x2, y2 = tri[..., 2, 0], tri[..., 2, 1]
    area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
    w0 = (x1 - px) * (y2 - py) - (x2 - px) * (y1 - py)
    w1 = (x2 - px) * (y0 - py) - (x0 - px) * (y2 - py)
    w2 = (x0 - px) * (y1 - py) - (x1 - px) * (y0 - py)
    return torch.stack([w0, w1, w2], -1) / area.unsqueeze(-1)


@torch.no_grad()
def rasterize(vertices: torch.Tensor, faces: torch.Tensor, size: tuple[int, int]) -> Fragments:
    """Z-buffer rasterisation of (B,V,3) screen vertices with (F,3) triangles into (H,W) fragments."""
    height, width = size
    batch = vertices.shape[0]
    tri = vertices.detach()[:, faces]  # (B,F,3,3)
    xy = tri[..., :2]
    lo = xy.amin(2).ceil()
    hi = xy.amax(2).floor()
    lo = torch.stack([lo[..., 0].clamp(0, width - 1), lo[..., 1].clamp(0, height - 1)], -1)
    hi = torch.stack([hi[..., 0].clamp(-1, width - 1), hi[..., 1].clamp(-1, height - 1)], -1)
    extent = (hi - lo + 1).clamp_min(0)  # (B,F,2) pixels covered by the bounding box
    area = (xy[..., 1, 0] - xy[..., 0, 0]) * (xy[..., 2, 1] - xy[..., 0, 1]) - (xy[..., 2, 0] - xy[..., 0, 0]) * (
        xy[..., 1, 1] - xy[..., 0, 1]
    )
    alive = (extent > 0).all(-1) & (area.abs() > 1e-12)
    zbuffer = torch.full((batch * height * width,), math.inf, device=vertices.device, dtype=tri.dtype)
    winner = torch.full((batch * height * width,), -1, dtype=torch.long, device=vertices.device)
    candidates = list(_candidate_chunks(alive, extent))
    pixel_lists = []
    for b_idx, f_idx, box in candidates:
        pixel, depth, face = _covered_pixels(tri, lo, b_idx, f_idx, box, height, width)
        zbuffer.scatter_reduce_(0, pixel, depth, "amin")
        pixel_lists.append((pixel, depth, face))
    for pixel, depth, face in pixel_lists:
        front = depth <= zbuffer[pixel]
        winner.scatter_reduce_(0, pixel[front], face[front], "amax")
    face_index = winner.view(batch, height, width)
    depth = torch.where(
        face_index >= 0,
        zbuffer.view(batch, height, width),
        torch.full_like(zbuffer.view(batch, height, width), math.inf),
    )
    return Fragments(face_index=face_index, depth=depth)


def _candidate_chunks(alive: torch.Tensor, extent: torch.Tensor):
    """Group live triangles by bounding-box size (powers of two) so each group is one dense grid."""
    b_all, f_all = alive.nonzero(as_tuple=True)
    if b_all.numel() == 0:
        return
    box = extent[b_all, f_all].amax(-1)
    bucket = torch.ceil(torch.log2(box.float().clamp_min(1))).long()
    for level in bucket.unique().tolist():
        sel = (bucket == level).nonzero(as_tuple=True)[0]
        side = 2**level
        per_chunk = max(1, _MAX_CANDIDATES // (side * side))
        for start in range(0, sel.numel(), per_chunk):
            part = sel[start : start + per_chunk]
            yield b_all[part], f_all[part], side


def _covered_pixels(tri, lo, b_idx, f_idx, side, height, width):
    offsets = torch.arange(side, device=tri.device, dtype=tri.dtype)
    oy, ox = torch.meshgrid(offsets, offsets, indexing="ij")
    start = lo[b_idx, f_idx]  # (N,2)
    px = start[:, 0, None] + ox.reshape(1, -1)
    py = start[:, 1, None] + oy.reshape(1, -1)
    corners = tri[b_idx, f_idx]  # (N,3,3)
    bary = _edge_barycentrics(corners[:, None], px, py)  # (N,K,3)
    inside = (bary >= -1e-6).all(-1) & (px < width) & (py < height)
    depth = (bary * corners[:, None, :, 2]).sum(-1)
    n_idx, k_idx = inside.nonzero(as_tuple=True)
    pixel = (b_idx[n_idx] * height + py[n_idx, k_idx].long()) * width + px[n_idx, k_idx].long()
    return pixel, depth[n_idx, k_idx], f_idx[n_idx]


def barycentrics(vertices: torch.Tensor, faces: torch.Tensor, fragments: Fragments) -> torch.Tensor:
    """(B,H,W,3) barycentric coordinates of each covered pixel, differentiable w.r.t. ``vertices``."""
    batch, height, width = fragments.face_index.shape
    b_idx, y_idx, x_idx = (fragments.face_index >= 0).nonzero(as_tuple=True)
    face = fragments.face_index[b_idx, y_idx, x_idx]
    corners = vertices[b_idx[:, None], faces[face]]  # (N,3,3)
    bary = _edge_barycentrics(corners, x_idx.to(vertices.dtype), y_idx.to(vertices.dtype))
    out = vertices.new_zeros(batch, height, width, 3)
    return out.index_put((b_idx, y_idx, x_idx), bary)


def interpolate(
    attributes: torch.Tensor, faces: torch.Tensor, fragments: Fragments, bary: torch.Tensor
) -> torch.Tensor:
    """(B,V,C) per-vertex attributes -> (B,H,W,C) at each covered pixel (zero on background)."""
    safe_face = fragments.face_index.clamp_min(0)  # (B,H,W)
    corner_ids = faces[safe_face]  # (B,H,W,3)
    batch_ids = torch.arange(attributes.shape[0], device=attributes.device).view(-1, 1, 1, 1)
    corner_values = attributes[batch_ids, corner_ids]  # (B,H,W,3,C)
    values = (bary.unsqueeze(-1) * corner_values).sum(-2)
    return values * (fragments.face_index >= 0).unsqueeze(-1).to(values)


def render_colors(
    vertices: torch.Tensor, faces: torch.Tensor, colors: torch.Tensor, size: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor, Fragments]:
    """Rasterise and interpolate per-vertex colours: image (B,C,H,W), mask (B,1,H,W), fragments."""
    faces = faces.to(vertices.device)
    fragments = rasterize(vertices, faces, size)
    bary = barycentrics(vertices, faces, fragments)
    image = interpolate(colors, faces, fragments, bary).permute(0, 3, 1, 2)
    return image, fragments.mask.unsqueeze(1), fragments


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """(B,V,3) vertices, counter-clockwise (F,3) triangles -> (B,V,3) unit normals (area weighted)."""
    v0, v1, v2 = (vertices[:, faces[:, i]] for i in range(3))
    face_normals = torch.cross(v1 - v0, v2 - v0, dim=-1)
    normals = torch.zeros_like(vertices)
    for i in range(3):
        normals = normals.index_add(1, faces[:, i], face_normals)
    return F.normalize(normals, dim=-1, eps=1e-8)


def sh_irradiance(normals: torch.Tensor, light: torch.Tensor) -> torch.Tensor:
    """Lambertian irradiance (B,V,3) from unit normals (B,V,3) and 27 SH coefficients (B,27), 9 per colour.

    Deep3DFaceRecon's convention: coefficients are offsets from an ambient light of 0.8.
    """
    coeffs = light.view(-1, 3, 9).clone()
    coeffs[:, :, 0] = coeffs[:, :, 0] + INIT_LIGHT
    return _sh_basis(normals) @ coeffs.permute(0, 2, 1)


def sh_shade(normals: torch.Tensor, albedo: torch.Tensor, light: torch.Tensor) -> torch.Tensor:
    """Per-vertex colour = albedo * SH irradiance."""
    return albedo * sh_irradiance(normals, light)


def sh_basis(normals: torch.Tensor) -> torch.Tensor:
    """(…,3) unit normals -> (…,9) the scaled SH basis used by :func:`sh_irradiance`."""
    return _sh_basis(normals)
