"""Light apart from skin colour on the ICT path: light carries shading, the albedo carries colour; light sliders
stay where the irradiance is non-negative; the edit report prints light and expression changes."""

from __future__ import annotations

import torch
from test_face_generator import generator

from facecontrol.pipelines import pie

from pie_stand_ins import small_models

CHROMA_BOUND = 0.005  # largest move of the face's mean chromaticity (r, g of rgb / sum) under a light edit


def _formation():
    formation = small_models(with_recognition=False, with_perceptual=False).formation
    formation.colour_in_albedo = True
    return formation


def _portraits():
    g = generator()
    ws = g.sample_ws(3, torch.Generator().manual_seed(5), 0.7)
    return g, g.synthesis(ws), g.face_parameters(ws)


def _geometry(theta):
    return {k: theta[k] for k in ("identity", "expression", "angles", "scale", "translation")}


def _ict(theta):
    identity = torch.zeros(theta["identity"].shape[0], 100)
    identity[:, : theta["identity"].shape[1]] = theta["identity"]
    return {**theta, "identity": identity}


def test_scaling_image_colours_changes_the_albedo_not_the_light():
    formation = _formation()
    _, images, truth = _portraits()
    geometry = _ict(_geometry(truth))
    darker = ((images + 1) / 2 * torch.tensor([0.7, 0.6, 0.8]).view(1, 3, 1, 1)) * 2 - 1
    a, b = formation.fit_appearance(images, geometry), formation.fit_appearance(darker, geometry)
    # the light stays within 0.01 (silhouette pixels mix in the grey background); under the former grey-albedo
    # convention band 0 moved by 0.8 x (1 - 0.6..0.8), 0.16 to 0.32
    assert (a["light"] - b["light"]).abs().max() < 0.01
    ratio = b["albedo"].mean(1) / a["albedo"].mean(1)
    assert torch.allclose(ratio, torch.tensor([0.7, 0.6, 0.8]).expand_as(ratio), atol=0.02), ratio
    light = a["light"].view(-1, 3, 9)
    assert torch.allclose(light, light[:, :1].expand_as(light)) and light[:, :, 0].abs().max() < 1e-5


def _chroma(image, mask):
    rgb = (image * mask).flatten(2).sum(-1) / mask.flatten(2).sum(-1)
    return rgb[:, :2] / rgb.sum(1, keepdim=True)


def test_a_light_edit_changes_shading_but_not_the_skin_colour():
    formation = _formation()
    _, images, truth = _portraits()
    theta = formation.fit_appearance(images, _ict(_geometry(truth)))
    edited = pie.edited_theta(theta, formation.exp_names, light_offsets={"from_right": 0.3, "from_top": 0.2})
    before, mask = formation.render(theta, 64)
    after, _ = formation.render(edited, 64)
    shading_change = ((after - before).abs() * mask).sum() / (3 * mask.sum())
    assert shading_change > 0.03
    assert (_chroma(after, mask) - _chroma(before, mask)).abs().max() < CHROMA_BOUND


def test_light_sliders_stop_where_the_irradiance_would_go_negative():
    light = torch.zeros(2, 27)
    theta = {"angles": torch.zeros(2, 3), "expression": torch.zeros(2, 53), "light": light}
    small = pie.edited_theta(theta, [], light_offsets={"from_top": 0.2})
    assert torch.allclose(pie.light_summary(small["light"])[:, 1], torch.full((2,), 0.2))
    for offsets in (
        {"from_top": 1.0},
        {"from_right": -1.0},
        {"intensity": -1.0},
        {"from_front": -1.0, "from_top": 0.5},
    ):
        edited = pie.edited_theta(theta, [], light_offsets=offsets)
        assert (pie.min_irradiance(edited["light"]) >= -1e-3).all(), offsets
        assert (pie.min_irradiance(edited["light"]) < 0.05).all(), offsets  # stopped at the limit, not before


def test_edit_report_prints_light_and_expression_changes():
    names = ["mouthSmile_L", "mouthSmile_R", "jawOpen"]
    theta = {"angles": torch.zeros(1, 3), "expression": torch.zeros(1, 3), "light": torch.zeros(1, 27)}
    target = pie.edited_theta(
        theta, names, yaw=10, expression_offsets={"smile": 0.5}, light_offsets={"from_right": 0.2}
    )
    report = pie.edit_report(theta, target, target, ("pose", "expression", "illumination"), "direct", names)
    assert "light intensity/top/right/front +0.00/+0.00/+0.00/+0.00 -> +0.00/+0.00/+0.20/+0.00" in report
    assert "mouthSmile_L 0.00 -> 0.50 -> 0.50" in report and "jawOpen" not in report
    assert "-> target 10.0/0.0/0.0" in report
