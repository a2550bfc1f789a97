"""DVA DDIM sampler behaviour beyond the golden fixture's setting (cheap stand-in model, no fixture)."""

import pytest
import torch

from facecontrol.pipelines.dva import (
    DDIMSchedule,
    ddim_generate,
    ddim_invert,
    generate_frames,
    invert_frames,
    linear_betas,
    respace_timesteps,
)


def _toy_model(x, t, z_face):
    return 0.3 * x + t.view(-1, 1, 1, 1).float() / 1000 + z_face.mean(dim=1).view(-1, 1, 1, 1)


def test_respacing_rules():
    assert respace_timesteps(5, rule="ddim") == [0, 200, 400, 600, 800]
    assert len(respace_timesteps(1000, rule="ddim")) == 1000
    with pytest.raises(ValueError):
        respace_timesteps(45, rule="ddim")
    typed = respace_timesteps(45)  # "auto": no integer stride, so evenly spaced
    assert len(typed) == 45 and typed[0] == 0 and typed[-1] == 999
    assert respace_timesteps(20) == list(range(0, 1000, 50))


def test_full_schedule_matches_training_schedule():
    full = DDIMSchedule.from_timesteps(list(range(1000)))
    assert full.alphas_cumprod.dtype == "float64"
    assert abs(full.alphas_cumprod - (1 - linear_betas()).cumprod()).max() < 1e-12


def test_chunked_frames_match_one_batch_and_report_progress():
    torch.manual_seed(0)
    frames, z_face = torch.rand(5, 3, 8, 8) * 2 - 1, torch.randn(5, 512)
    schedule = DDIMSchedule.from_steps(7)
    reports = []

    def record(done, total):
        reports.append((done, total))

    x_T = invert_frames(_toy_model, frames, z_face, schedule, chunk_size=2, callback=record)
    assert torch.allclose(x_T, ddim_invert(_toy_model, frames, z_face, schedule), atol=1e-6)
    calls = 3 * (len(schedule) - 1)
    assert reports == [(d, calls) for d in range(1, calls + 1)]

    reports.clear()
    out = generate_frames(_toy_model, x_T, z_face, schedule, chunk_size=4, callback=record)
    assert torch.allclose(out, ddim_generate(_toy_model, x_T, z_face, schedule), atol=1e-6)
    assert reports[-1] == (2 * len(schedule), 2 * len(schedule))
    assert out.min() >= -1 - 1e-5 and out.max() <= 1 + 1e-5
