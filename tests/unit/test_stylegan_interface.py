"""Both StyleGAN2 generators (rosinality, NVlabs) answer the one interface the rest of the pack uses."""

from __future__ import annotations

import pytest
import torch

from facecontrol.models.stylegan2 import Generator as RosinalityGenerator
from facecontrol.models.stylegan_interface import StyleGAN2Generator

from filled_weights.pie import tiny_generator


def rosinality_generator() -> RosinalityGenerator:
    torch.manual_seed(0)
    generator = RosinalityGenerator(size=16, style_dim=64, n_mlp=2, channel_multiplier=1).eval().requires_grad_(False)
    with torch.no_grad():
        generator.w_avg.copy_(generator.mean_latent(256)[0])
    return generator


GENERATORS = {"rosinality": rosinality_generator, "nvlabs": tiny_generator}


@pytest.fixture(params=sorted(GENERATORS), scope="module")
def generator(request) -> StyleGAN2Generator:
    return GENERATORS[request.param]()


@torch.no_grad()
def test_the_interface_is_the_same_for_both(generator):
    assert isinstance(generator, StyleGAN2Generator) and generator.kind in ("rosinality", "nvlabs")
    z = torch.randn(2, generator.z_dim, generator=torch.Generator().manual_seed(1))
    ws = generator.mapping(z)
    assert ws.shape == (2, generator.num_ws, generator.w_dim)
    truncated = generator.mapping(z, truncation_psi=0.5)
    assert torch.allclose(truncated, generator.truncate(ws, 0.5), atol=1e-6)
    assert torch.allclose(generator.truncate(ws, 0.0), generator.mean_ws(2), atol=1e-6)
    image = generator.synthesis(ws, noise_mode="const")
    assert image.shape == (2, 3, generator.resolution, generator.resolution) and image.dtype == torch.float32
    assert torch.equal(generator.synthesis(ws[:, 0], noise_mode="const"), image)  # w is broadcast to W+
    assert generator.device == torch.device("cpu") and generator.dtype == torch.float32
    assert generator.describe()["num_ws"] == generator.num_ws


@torch.no_grad()
def test_sample_ws_draws_z_from_the_given_rng(generator):
    first = generator.sample_ws(3, torch.Generator().manual_seed(5), truncation=0.7)
    again = generator.sample_ws(3, torch.Generator().manual_seed(5), truncation=0.7)
    z = torch.randn(3, generator.z_dim, generator=torch.Generator().manual_seed(5))
    assert torch.equal(first, again)
    assert torch.allclose(first, generator.mapping(z, truncation_psi=0.7))


def test_options_are_validated_and_shared_with_the_synthesis_network():
    generator = tiny_generator()
    generator.configure(gradient_checkpointing=True, compute_dtype=torch.bfloat16)
    assert generator.synthesis.options is generator.options
    assert generator.synthesis.options.gradient_checkpointing
    with pytest.raises(ValueError, match="float32 or bfloat16"):
        generator.compute_dtype = torch.float16


def _w_gradient(generator: StyleGAN2Generator, ws: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    ws = ws.clone().requires_grad_(True)
    image = generator.synthesis(ws, noise_mode="const")
    target = torch.linspace(-1, 1, image.numel()).reshape(image.shape)
    (image - target).square().mean().backward()
    return image.detach(), ws.grad


def test_gradient_checkpointing_gives_the_same_image_and_gradient(generator):
    ws = generator.sample_ws(2, torch.Generator().manual_seed(2), truncation=0.7)
    plain_image, plain_grad = _w_gradient(generator.configure(gradient_checkpointing=False), ws)
    try:
        checked_image, checked_grad = _w_gradient(generator.configure(gradient_checkpointing=True), ws)
    finally:
        generator.configure(gradient_checkpointing=False)
    assert torch.equal(checked_image, plain_image)
    assert torch.allclose(checked_grad, plain_grad, rtol=1e-5, atol=1e-8)
    assert plain_grad.abs().max() > 0


def test_device_can_be_recorded_as_comfyui_model_patcher_does(generator):
    generator.device = torch.device("cpu")  # ModelPatcher sets model.device after moving it
    assert generator.device == generator.w_avg.device
