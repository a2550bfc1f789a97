"""DVA DDIM inversion and generation against the authors' sampler (fixture dva_ddim)."""
import pytest
import torch

from golden_fixtures import load_fixture

from facecontrol.models.dva_unet import DVAUNet
from facecontrol.pipelines.dva import DDIMSchedule, ddim_generate, ddim_invert, respace_timesteps

pytestmark = pytest.mark.golden


class CountingModel:
    """Wraps the UNet and records the timesteps it is called with."""

    def __init__(self, model):
        self.model = model
        self.timesteps = []

    def __call__(self, x, t, z_face):
        assert t.dtype == torch.int64
        self.timesteps.append(int(t[0]))
        return self.model(x, t, z_face)


def _schedule(config) -> DDIMSchedule:
    section = config["section_counts"]
    assert section == f"ddim{config['T']}"
    return DDIMSchedule.from_timesteps(respace_timesteps(config["T"], rule="ddim"))


def test_dva_ddim_invert_and_generate():
    fx = load_fixture("dva_ddim")
    schedule = _schedule(fx.config)
    fx.check("timestep_map", schedule.timestep_tensor())

    unet = DVAUNet.from_config(fx.config).eval()
    unet.load_state_dict(fx.filled_state_dict(), strict=True)
    model = CountingModel(unet)
    x0, z_face = fx.inputs["in.x0"], fx.inputs["in.z_face"]

    x_T = ddim_invert(model, x0, z_face, schedule, clip_denoised=fx.config["clip_denoised"])
    assert model.timesteps == list(schedule.timestep_map[:-1])
    fx.check("x_T", x_T)

    model.timesteps.clear()
    recorded_x_T = fx.outputs["out.x_T"]
    recon = (ddim_generate(model, recorded_x_T, z_face, schedule, clip_denoised=fx.config["clip_denoised"]) + 1) / 2
    assert model.timesteps == list(reversed(schedule.timestep_map))
    fx.check("recon", recon)


# Sampler behaviour beyond the single fixture setting (cheap stand-in model).

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
    from facecontrol.pipelines.dva import linear_betas

    full = DDIMSchedule.from_timesteps(list(range(1000)))
    assert full.alphas_cumprod.dtype == "float64"
    assert abs(full.alphas_cumprod - (1 - linear_betas()).cumprod()).max() < 1e-12


def test_chunked_frames_match_one_batch_and_report_progress():
    from facecontrol.pipelines.dva import generate_frames, invert_frames

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
