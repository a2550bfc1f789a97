"""A faster deterministic solver for the DVA noise predictor: DPM-Solver++(2M) (Lu et al. 2022).

It runs on the same respaced timesteps as DDIM and calls the model exactly as DDIM does (original
timestep index, clipped x0 prediction), so for the same number of model calls it costs the same time.
Data-prediction form with lambda = log(sqrt(abar) / sqrt(1 - abar)) and h = lambda_next - lambda:

    x_next = (sigma_next / sigma) * x - alpha_next * (exp(-h) - 1) * D
    D = x0_i                                       (first step, and the step onto the clean image)
    D = (1 + 1/(2r)) x0_i - 1/(2r) x0_{i-1},  r = h_prev / h   (later steps)

The same recurrence with the levels in increasing noise order inverts an image (h < 0), with the
DDIM inversion's T-1 calls; generation makes T calls and lands on abar = 1 as DDIM does.
pipelines.dva.SOLVERS registers it as "dpm++2m" for encode, decode and streaming.
"""

from __future__ import annotations

import math

import torch

from .dva import DDIMSchedule, NoisePredictor, ProgressCallback, _denoise

__all__ = ["dpmpp_2m", "dpmpp_invert", "dpmpp_generate"]


def _lambda(abar: float) -> float:
    return 0.5 * math.log(abar) - 0.5 * math.log1p(-abar) if abar < 1.0 else math.inf


def dpmpp_2m(
    model: NoisePredictor,
    x: torch.Tensor,
    z_face: torch.Tensor,
    timesteps: list[int],
    levels: list[float],
    clip_denoised: bool = True,
    callback: ProgressCallback | None = None,
) -> torch.Tensor:
    """Move x from cumulative alpha levels[0] through levels[1:], evaluating the model at timesteps[i]
    on level i (len(levels) == len(timesteps) + 1)."""
    previous_x0, previous_h = None, None
    total = len(timesteps)
    for i, t in enumerate(timesteps):
        abar, abar_next = levels[i], levels[i + 1]
        x0, _ = _denoise(model, x, t, z_face, abar, clip_denoised)
        if abar_next >= 1.0:
            x = x0
        else:
            h = _lambda(abar_next) - _lambda(abar)
            data = x0
            if previous_x0 is not None and previous_h not in (None, 0.0) and h != 0.0:
                r = previous_h / h
                data = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * previous_x0
            sigma_ratio = math.sqrt((1 - abar_next) / (1 - abar))
            x = sigma_ratio * x - math.sqrt(abar_next) * math.expm1(-h) * data
            previous_h = h
        previous_x0 = x0
        if callback is not None:
            callback(i + 1, total)
    return x


@torch.no_grad()
def dpmpp_invert(model, x0, z_face, schedule: DDIMSchedule, clip_denoised: bool = True, callback=None):
    """x_T from images in [-1,1] with T-1 calls (the DDIM inversion's levels)."""
    abar = [float(a) for a in schedule.alphas_cumprod]
    return dpmpp_2m(model, x0, z_face, list(schedule.timestep_map[:-1]), abar, clip_denoised, callback)


@torch.no_grad()
def dpmpp_generate(model, x_T, z_face, schedule: DDIMSchedule, clip_denoised: bool = True, callback=None):
    """Images in [-1,1] from x_T with T calls (the DDIM generation's levels, ending at abar = 1)."""
    abar = [float(a) for a in schedule.alphas_cumprod]
    levels = list(reversed(abar)) + [1.0]
    return dpmpp_2m(model, x_T, z_face, list(reversed(schedule.timestep_map)), levels, clip_denoised, callback)
