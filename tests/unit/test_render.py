"""The differentiable rasteriser: coverage and z-buffer, gradients against finite differences, SH shading,
and the fitted ICT-FaceKit face of the astronaut rendered over the photo."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facecontrol.face.render import (
    barycentrics,
    interpolate,
    rasterize,
    render_colors,
    sh_shade,
    vertex_normals,
)


def _two_layer_scene(dtype=torch.float64):
    # a far quad behind a near triangle
    vertices = torch.tensor(
        [
            [
                [1.3, 1.6, 5.0],
                [30.7, 1.2, 5.0],
                [30.4, 30.8, 5.0],
                [1.1, 30.2, 5.0],
                [6.3, 5.2, 1.0],
                [26.1, 9.7, 1.0],
                [12.4, 27.9, 2.0],
            ]
        ],
        dtype=dtype,
    )
    faces = torch.tensor([[0, 1, 2], [0, 2, 3], [4, 5, 6]])
    return vertices, faces


def test_zbuffer_keeps_the_nearest_triangle_and_barycentrics_reproduce_the_pixel():
    vertices, faces = _two_layer_scene()
    fragments = rasterize(vertices, faces, (32, 32))
    assert fragments.face_index[0, 16, 15].item() == 2  # inside the near triangle
    assert fragments.face_index[0, 29, 29].item() in (0, 1)  # the quad only
    assert fragments.face_index[0, 0, 0].item() == -1
    bary = barycentrics(vertices, faces, fragments)
    covered = fragments.face_index >= 0
    assert torch.allclose(bary.sum(-1)[covered], torch.ones(()).double())
    assert (bary[covered] >= -1e-6).all()
    # interpolating the screen positions themselves gives back each pixel's centre
    xy = interpolate(vertices[..., :2], faces, fragments, bary)
    rows, cols = covered[0].nonzero(as_tuple=True)
    assert torch.allclose(xy[0, rows, cols, 0], cols.double(), atol=1e-9)
    assert torch.allclose(xy[0, rows, cols, 1], rows.double(), atol=1e-9)
    # the near triangle's depth wins over the quad's
    assert fragments.depth[0, 16, 15].item() < 5.0


def test_gradients_to_vertices_and_colours_match_finite_differences():
    vertices, faces = _two_layer_scene()
    colors = torch.rand(1, 7, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    weights = torch.rand(1, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(1))

    def loss(v, c):
        image, _, _ = render_colors(v, faces, c, (32, 32))
        return (image * weights).sum()

    v = vertices.clone().requires_grad_(True)
    c = colors.clone().requires_grad_(True)
    loss(v, c).backward()
    eps = 1e-5
    for index in [(0, 4, 0), (0, 5, 1), (0, 6, 0), (0, 2, 1), (0, 0, 0)]:
        plus, minus = vertices.clone(), vertices.clone()
        plus[index] += eps
        minus[index] -= eps
        numeric = (loss(plus, colors) - loss(minus, colors)) / (2 * eps)
        assert v.grad[index].item() == pytest.approx(numeric.item(), rel=1e-5, abs=1e-7), index
    for index in [(0, 4, 2), (0, 1, 0), (0, 6, 1)]:
        plus, minus = colors.clone(), colors.clone()
        plus[index] += eps
        minus[index] -= eps
        numeric = (loss(vertices, plus) - loss(vertices, minus)) / (2 * eps)
        assert c.grad[index].item() == pytest.approx(numeric.item(), rel=1e-6, abs=1e-9), index
    assert v.grad[0, 4].abs().sum() > 0


def test_sh_shading_gradient_and_lambertian_direction():
    vertices, faces = _two_layer_scene()
    normals = vertex_normals(vertices, faces)
    assert torch.allclose(normals[0, :4, 2].abs(), torch.ones(4, dtype=torch.float64))  # the flat quad
    assert torch.allclose(normals.norm(dim=-1), torch.ones(1, 7, dtype=torch.float64))
    light = torch.zeros(1, 27, dtype=torch.float64)
    up = torch.tensor([[[0.0, 1.0, 0.0]]], dtype=torch.float64)
    down = -up
    light[:, 1] = light[:, 10] = light[:, 19] = -0.5  # first-order band: -c*y basis, so light from +y
    albedo = torch.ones(1, 1, 3, dtype=torch.float64)
    assert (sh_shade(up, albedo, light) > sh_shade(down, albedo, light)).all()
    light.requires_grad_(True)
    torch.autograd.gradcheck(lambda l: sh_shade(normals, albedo.expand(1, 7, 3), l), (light,))


def test_fitted_ict_face_of_the_astronaut_lands_on_the_detected_landmarks(detector):
    from facecontrol.face.geometry import rotation_matrix
    from facecontrol.face.ict_fit import fit_landmarks, interocular_distance
    from facecontrol.face.ict_model import load_ict_model

    from media import ict_facekit_dir, load_rgb

    image = load_rgb("astronaut.png")
    faces = detector.detect(image)
    assert faces, "no face detected on astronaut.png"
    detected = torch.from_numpy(np.asarray(faces[0].lm68, np.float64))[None]
    model = load_ict_model(ict_facekit_dir() / "face_model.npz").double()
    fit = fit_landmarks(detected, model)
    shape = model.shape(fit.identity, fit.expression)
    rotated = shape @ rotation_matrix(fit.angles).transpose(1, 2)
    screen = torch.stack(
        [
            fit.scale[:, None] * rotated[..., 0] + fit.translation[:, None, 0],
            fit.translation[:, None, 1] - fit.scale[:, None] * rotated[..., 1],
            -rotated[..., 2],
        ],
        -1,
    )
    height, width = image.shape[:2]
    colors = torch.ones_like(screen)
    rendered, mask, fragments = render_colors(screen, model.triangles, colors, (height, width))
    landmarks = screen[0, model.lmk68, :2]
    error = (landmarks - detected[0]).norm(dim=-1).mean() / interocular_distance(detected)[0]
    assert error < 0.03, f"mean landmark error {error:.4f} of the inter-ocular distance"
    # the inner landmarks (brows, nose, eyes, mouth) are visible in the render: covered and not occluded
    inner = landmarks[17:].round().long()
    covered = mask[0, 0, inner[:, 1], inner[:, 0]]
    assert covered.mean() > 0.95
    depth_at = fragments.depth[0, inner[:, 1], inner[:, 0]]
    vertex_depth = screen[0, model.lmk68[17:], 2]
    assert ((depth_at - vertex_depth).abs() < 1.0).float().mean() > 0.9  # cm: the landmark is the front surface
