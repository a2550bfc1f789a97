"""PIE's BFM image formation (Deep3DFaceRecon regressor + BFM_model_front.mat layout): alignment, pose
conventions shared with the ICT backend, gradients, the released file layouts, and PIE on top of it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.io import savemat

from facecontrol.face.align import ffhq_quad_params
from facecontrol.face.bfm import BFMProjector, load_standard_landmarks
from facecontrol.models.d3dfr import load_deep3dfacerecon
from facecontrol.pipelines import pie
from facecontrol.pipelines.pie.bfm import BFMFaceFormation, standard_view_landmarks

from pie_stand_ins import astronaut_crop, bfm_test_file, small_models

BFM = "bfm_deep3dfacerecon"


@pytest.fixture(scope="module")
def formation() -> BFMFaceFormation:
    return small_models(with_recognition=False, with_perceptual=False, face_model=BFM).formation


def _zero_theta(formation: BFMFaceFormation, batch: int = 1, **angles_deg) -> pie.Theta:
    angles = torch.tensor([[angles_deg.get(k, 0.0) for k in ("yaw", "pitch", "roll")]] * batch) * math.pi / 180
    return {
        "identity": torch.zeros(batch, 80),
        "expression": torch.zeros(batch, 64),
        "texture": torch.zeros(batch, 80),
        "angles": angles,
        "light": torch.zeros(batch, 27),
        "translation": torch.zeros(batch, 3),
    }


def test_the_standard_face_fills_the_ffhq_crop_exactly(formation):
    """The fixed crop->view similarity: the standard face's 68 landmarks, mapped into a crop, give back
    the crop itself as their FFHQ quad (centre in the middle, half-axes half the crop)."""
    size = 256
    landmarks = formation.landmarks(_zero_theta(formation), size)[0].double().numpy()
    c, x, y = (v[0] for v in ffhq_quad_params(landmarks[None]))
    np.testing.assert_allclose(c, [size / 2, size / 2], atol=0.5)
    np.testing.assert_allclose(x, [size / 2, 0.0], atol=0.5)
    np.testing.assert_allclose(y, [0.0, size / 2], atol=0.5)


def test_view_puts_crop_content_where_align_img_puts_the_standard_landmarks(formation):
    """Blobs drawn at the standard face's crop landmarks appear at its 224-view landmarks (grid conventions)."""
    size = 512
    crop_points = formation.landmarks(_zero_theta(formation), size)[0]
    rows, cols = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    picked = [36, 45, 30, 48, 54]
    image = -torch.ones(1, 3, size, size)
    for index in picked:
        x, y = crop_points[index]
        blob = torch.exp(-((cols - x) ** 2 + (rows - y) ** 2) / (2 * 6.0**2))
        image = torch.maximum(image, blob * 2 - 1)
    view = formation.view(image)[0, 0]
    expected = standard_view_landmarks(formation.bfm)[picked]
    for ex, ey in expected:
        window = view[int(ey) - 6 : int(ey) + 7, int(ex) - 6 : int(ex) + 7]
        weights = window / window.sum()
        wy, wx = torch.meshgrid(
            torch.arange(int(ey) - 6, int(ey) + 7).float(),
            torch.arange(int(ex) - 6, int(ex) + 7).float(),
            indexing="ij",
        )
        found = ((weights * wx).sum().item(), (weights * wy).sum().item())
        assert abs(found[0] - ex) < 0.75 and abs(found[1] - ey) < 0.75, (found, (ex, ey))


def test_pose_angles_follow_the_pack_convention(formation):
    """+yaw moves the nose to image right, +pitch down, +roll turns the eye line counter-clockwise:
    the same (yaw, pitch, roll) meaning as the ICT backend, so PIE Edit's sliders work on both."""

    def nose_offset(**angles):
        points = formation.landmarks(_zero_theta(formation, **angles), 256)[0]
        return points[30] - (points[36] + points[45]) / 2

    def eye_slope(**angles):
        points = formation.landmarks(_zero_theta(formation, **angles), 256)[0]
        return (points[45, 1] - points[36, 1]).item()

    straight = nose_offset()
    assert nose_offset(yaw=20)[0] > straight[0] + 5
    assert nose_offset(pitch=20)[1] > straight[1] + 5
    assert eye_slope(roll=20) < -10  # image y points down: the right-hand eye rises


def test_render_covers_the_face_and_shades_with_the_light(formation):
    theta = _zero_theta(formation)
    image, mask = formation.render(theta, 128)
    assert 0.2 < mask.mean().item() < 0.7
    inside = image[mask.expand_as(image) > 0]
    assert inside.min() > 0 and inside.max() <= 1.0
    # meantex (200, 150, 130)/255 under the 0.8 ambient light: pi * 0.8 / sqrt(4 pi) * albedo on average
    brighter = dict(theta, light=theta["light"].clone())
    brighter["light"].view(1, 3, 9)[:, :, 0] += 0.2
    image_bright, _ = formation.render(brighter, 128)
    ratio = (image_bright.sum() / image.sum()).item()
    assert ratio == pytest.approx(1.0 / 0.8, rel=1e-3)


def test_image_loss_has_gradients_for_every_parameter_and_the_image(formation):
    image = astronaut_crop(64).requires_grad_(True)
    theta = {k: v.detach().clone().requires_grad_(True) for k, v in formation.regress(image).items()}
    loss = pie.image_loss(formation, image, theta, photo=1.0, landmark=10.0).sum()
    loss.backward()
    for key in ("identity", "expression", "texture", "angles", "translation", "light"):
        assert theta[key].grad is not None and theta[key].grad.abs().sum() > 0, key
    assert image.grad.abs().sum() > 0  # through the landmark network
    image.grad = None
    formation.regress(image)["angles"].sum().backward()  # the regressor is differentiable w.r.t. the image
    assert image.grad.abs().sum() > 0


def test_released_file_layouts_build_the_formation(tmp_path):
    from filled_weights.pie import calibrated_regressor

    path = tmp_path / "epoch_20.pth"
    torch.save({"net_recon": calibrated_regressor("resnet50").state_dict(), "epoch": 20}, path)
    landmark_net = small_models(False, False).formation.landmark_net
    formation = BFMFaceFormation(BFMProjector(bfm_test_file()), load_deep3dfacerecon(path), landmark_net).eval()
    regressor = formation.regressor
    assert formation.tau_dims == {"pose": 3, "expression": 64, "illumination": 27}
    with torch.no_grad():
        theta = formation.regress(astronaut_crop(64))
    assert {k: tuple(v.shape) for k, v in theta.items()} == {
        "identity": (1, 80),
        "expression": (1, 64),
        "texture": (1, 80),
        "angles": (1, 3),
        "light": (1, 27),
        "translation": (1, 3),
    }
    with pytest.raises(ValueError, match="224 view"):
        BFMFaceFormation(BFMProjector.face_adapter(bfm_test_file()), regressor, landmark_net)


def test_standard_landmarks_file_sets_align_img_placement(tmp_path):
    points = np.random.default_rng(0).normal(scale=0.3, size=(68, 3))
    path = tmp_path / "similarity_Lm3D_all.mat"
    savemat(str(path), {"lm": points})
    standard = load_standard_landmarks(path)
    view = standard_view_landmarks(BFMProjector(bfm_test_file()), standard)
    np.testing.assert_allclose(view[:, 0], 112 + 102 * points[:, 0])
    np.testing.assert_allclose(view[:, 1], 112 - 102 * points[:, 1])
    savemat(str(path), {"lm": points[:5]})
    with pytest.raises(ValueError, match=r"\(68, 3\)"):
        load_standard_landmarks(path)


def test_named_expression_sliders_need_named_expressions(formation):
    theta = _zero_theta(formation)
    with pytest.raises(ValueError, match="'smile'.*reference face"):
        pie.edited_theta(theta, formation.exp_names, expression_offsets={"smile": 0.5})
    edited = pie.edited_theta(theta, formation.exp_names, yaw=10.0, expression_offsets={"smile": 0.0})
    assert edited["angles"][0, 0].item() == pytest.approx(10 * math.pi / 180)


def _energies_on_fixed_v(models, target, w_plus, weights, rignet, count: int = 4) -> dict[str, float]:
    rng = torch.Generator().manual_seed(123)
    total: dict[str, float] = {}
    for _ in range(count):
        v_plus = pie.sample_w_plus(models.generator, 1, rng)
        with torch.no_grad():
            energies, _ = pie.pie_energies(models, target, w_plus, weights, rignet, "pose", v_plus)
        for name, value in energies.items():
            total[name] = total.get(name, 0.0) + float(value.mean()) / count
    return total


@pytest.mark.slow  # an optimisation loop: minutes on the 2-core CI machine; stays in CI
def test_embedding_with_the_bfm_lowers_the_energies():
    """E(w) at the start (w_avg) and after 24 W + 24 W+ steps, on the same four v (a fresh v each step makes
    single-step values noisy). 24, not 12: after 12 steps E_invariance had fallen to 0.77-0.94 of its start
    depending on the thread count and the machine's load (it failed once at 0.943); after 24 it is at 0.64-0.65
    and the tightest term, E_synth, at 0.83 (1 and 2 threads). E_edit is logged but not asserted here: with the stand-in regressor the pose
    of the RigNet-edited image moves by tenths of a degree, so its part of E_edit that depends on w is
    below the v-to-v spread of the rest (render of theta_v against I_v); the ICT test covers E_edit."""
    from test_pie_embed import _random_rignet

    models = small_models(face_model=BFM)
    image = astronaut_crop(models.generator.resolution)
    weights = pie.PIEWeights(
        l2=1.0,
        perceptual=0.05,
        identity=300.0,
        edit=10.0,
        invariance=30.0,
        recognition=20.0,
        recognition_edit=20.0,
        photo=1.0,
        landmark=10.0,
    )
    rignet = _random_rignet(models)
    config = pie.EmbedConfig(steps_w=24, steps_wplus=24, lr=0.03, weights=weights, taus=("pose",))
    result = pie.embed(models, image, config, rignet=rignet)
    assert set(result.history[-1]) >= {"synth", "identity", "edit", "invariance", "recognition"}
    target = pie.make_target(models, image)
    start = models.generator.w_avg.reshape(1, 1, -1).expand(1, models.generator.num_ws, -1)
    before = _energies_on_fixed_v(models, target, start, weights, rignet)
    after = _energies_on_fixed_v(models, target, result.w_plus, weights, rignet)
    for term in ("synth", "identity", "invariance", "recognition"):
        assert after[term] < 0.9 * before[term], f"E_{term}: {before[term]:.5g} at w_avg, {after[term]:.5g} embedded"


@pytest.mark.slow  # an optimisation loop: minutes on the 2-core CI machine; stays in CI
def test_direct_mode_with_the_bfm_moves_the_regressed_yaw():
    models = small_models(with_perceptual=False, face_model=BFM)
    w_plus = pie.sample_w_plus(models.generator, 1, torch.Generator().manual_seed(0))
    before = pie.regress_generated(models, w_plus)
    target = pie.edited_theta(before, models.formation.exp_names, yaw=15.0)
    edited, history = pie.edit_direct(models, w_plus, target, ("pose",), pie.DirectEditConfig(steps=30, lr=0.1))
    after = pie.regress_generated(models, edited)
    change = (after["angles"][0, 0] - before["angles"][0, 0]).item()
    assert change > 0.25 * (15.0 * math.pi / 180), f"yaw changed by {change:.4f} rad"
    assert history[-1]["tau"] < history[0]["tau"]
