"""PIE Embed over a batch in chunks, the AdaDelta option, and the weight calibration script's ranking."""

from __future__ import annotations

import pytest
import torch

from facecontrol.pipelines import pie

from pie_stand_ins import astronaut_crop, small_models


@pytest.fixture(scope="module")
def models():
    return small_models(with_recognition=False, with_perceptual=True)


def test_chunked_embedding_covers_the_batch_and_counts_steps_over_all(models):
    image = astronaut_crop(models.generator.resolution)
    batch = torch.cat([image, image.flip(-1)])
    seen = []
    config = pie.EmbedConfig(steps_w=2, steps_wplus=1, lr=0.03, chunk=1)
    result = pie.embed(models, batch, config, on_step=lambda step, total, record, preview: seen.append((step, total)))
    assert result.w_plus.shape == (2, models.generator.num_ws, models.generator.w_dim)
    assert seen == [(i, 6) for i in range(6)] and [h["chunk"] for h in result.history] == [0, 0, 0, 1, 1, 1]
    alone = pie.embed(models, batch[1:], pie.EmbedConfig(steps_w=2, steps_wplus=1, lr=0.03))
    assert torch.allclose(result.w_plus[1:], alone.w_plus, atol=1e-5)  # a chunk is embedded as if alone


def test_adadelta_is_offered_and_lowers_e_synth(models):
    image = astronaut_crop(models.generator.resolution)
    config = pie.EmbedConfig(steps_w=6, steps_wplus=0, lr=1.0, optimizer="adadelta")
    history = pie.embed(models, image, config).history
    assert history[-1]["synth"] < history[0]["synth"]
    with pytest.raises(ValueError, match="optimizer must be one of"):
        pie.make_optimizer("sgd", [torch.zeros(1, requires_grad=True)], 0.1)


def test_calibration_ranks_candidates_by_the_fixed_criterion(models):
    import calibrate_pie

    image = astronaut_crop(models.generator.resolution)
    candidates = calibrate_pie.candidate_weights([0.0, 1.0], [0.0], [10.0])
    rows = calibrate_pie.calibrate(models, image, candidates, pie.EmbedConfig(steps_w=3, steps_wplus=0, lr=0.03))
    assert len(rows) == 2 and rows[0]["score"] <= rows[1]["score"]
    assert {row["weights"]["perceptual"] for row in rows} == {0.0, 1.0}
    start = calibrate_pie.reconstruction_error(models, image, models.generator.mean_ws(1))
    assert rows[0]["score"] < float(start)  # embedding beats the mean face on the criterion
