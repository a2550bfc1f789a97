"""PIE embedding on the astronaut's FFHQ crop with a small generator: every energy term goes down."""

from __future__ import annotations

import pytest
import torch

from facecontrol.models.rignet import RigNetBundle
from facecontrol.pipelines import pie

from pie_stand_ins import astronaut_crop, small_models

TERMS = ("synth", "identity", "edit", "invariance", "recognition")


def _random_rignet(models) -> RigNetBundle:
    torch.manual_seed(3)
    rignet = RigNetBundle(models.generator.num_ws, models.generator.w_dim, models.formation.tau_dims)
    for decoder in rignet.nets["pose"].decoders:  # an untrained RigNet that does change w
        torch.nn.init.normal_(decoder.weight, std=0.05)
    return rignet.eval().requires_grad_(False)


def _window_mean(history, term, start, stop):
    values = [h[term] for h in history[start:stop]]
    return sum(values) / len(values)


@pytest.mark.slow  # an optimisation loop: minutes on the 2-core CI machine; stays in CI
def test_every_energy_term_decreases_over_the_w_then_wplus_schedule():
    models = small_models()
    image = astronaut_crop(models.generator.resolution)
    weights = pie.PIEWeights(
        l2=1.0,
        perceptual=0.05,
        identity=300.0,
        edit=1.0,
        invariance=1.0,
        recognition=20.0,
        recognition_edit=20.0,
        photo=1.0,
        landmark=10.0,
    )
    config = pie.EmbedConfig(steps_w=8, steps_wplus=8, lr=0.03, weights=weights, taus=("pose",))
    steps_seen = []
    result = pie.embed(
        models,
        image,
        config,
        rignet=_random_rignet(models),
        on_step=lambda step, total, record, preview: steps_seen.append((step, total)),
    )
    history = result.history
    assert [h["stage"] for h in history] == ["w"] * 8 + ["w+"] * 8
    assert steps_seen[-1] == (15, 16)
    assert result.w_plus.shape == (1, models.generator.num_ws, models.generator.w_dim)
    for term in TERMS:
        first, last = _window_mean(history, term, 0, 3), _window_mean(history, term, -3, None)
        assert last < 0.98 * first, f"E_{term} did not decrease: first steps {first:.5g}, last steps {last:.5g}"
    # the W stage keeps one w for all layers; the W+ stage lets them differ
    spread = (result.w_plus - result.w_plus[:, :1]).abs().max()
    assert spread > 0


@pytest.mark.slow  # an optimisation loop: minutes on the 2-core CI machine; stays in CI
def test_direct_mode_moves_the_regressed_yaw_towards_the_target():
    models = small_models(with_perceptual=False)
    generator = models.generator
    w_plus = pie.sample_w_plus(generator, 1, torch.Generator().manual_seed(0))
    before = pie.regress_generated(models, w_plus)
    target = pie.edited_theta(before, models.formation.model.exp_names, yaw=15.0)
    config = pie.DirectEditConfig(steps=30, lr=0.1)
    edited, history = pie.edit_direct(models, w_plus, target, ("pose",), config)
    after = pie.regress_generated(models, edited)
    change = (after["angles"][0, 0] - before["angles"][0, 0]).item()
    assert change > 0.25 * (15.0 * torch.pi / 180), f"yaw changed by {change:.4f} rad"
    assert history[-1]["tau"] < history[0]["tau"]
