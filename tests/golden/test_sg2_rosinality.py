"""Golden test: rosinality StyleGAN2 generator (W+ synthesis, z -> w mapping)."""
import argparse
import math

import pytest
import torch
from golden_fixtures import load_fixture

from facecontrol.models.stylegan2 import Generator, load_stylegan2

pytestmark = pytest.mark.golden

LR_MUL = 0.01  # rosinality's lr_mlp default, used for the rescaled-mapping output


@pytest.fixture(scope="module")
def fx():
    return load_fixture("sg2_rosinality")


@pytest.fixture(scope="module")
def generator(fx):
    torch.manual_seed(0)
    model = Generator(**fx.config).eval()
    model.load_state_dict(fx.filled_state_dict(), strict=True)
    return model


@torch.no_grad()
def test_image_from_w_plus(fx, generator):
    image, _ = generator([fx.inputs["in.w_plus"]], input_is_latent=True, randomize_noise=False)
    fx.check("image", image)


@torch.no_grad()
def test_common_synthesis_matches(fx, generator):
    fx.check("image", generator.synthesis(fx.inputs["in.w_plus"], noise_mode="const"))


@torch.no_grad()
def test_mapping(fx, generator):
    z = fx.inputs["in.z"]
    fx.check("w", generator.style(z))
    assert generator.mapping(z).shape == (z.shape[0], generator.num_ws, fx.config["style_dim"])


@torch.no_grad()
def test_image_from_z(fx, generator):
    image, _ = generator([fx.inputs["in.z"]], randomize_noise=False)
    fx.check("image_from_z", image)


@torch.no_grad()
def test_w_mapping_rescaled(fx):
    state = fx.filled_state_dict()
    factor = math.sqrt(fx.config["style_dim"]) / LR_MUL
    for i in range(1, fx.config["n_mlp"] + 1):
        state[f"style.{i}.weight"] = state[f"style.{i}.weight"] * factor
    model = Generator(**fx.config).eval()
    model.load_state_dict(state, strict=True)
    fx.check("w_mapping_rescaled", model.style(fx.inputs["in.z"]))


@torch.no_grad()
def test_load_stylegan2_reads_converted_pt(fx, tmp_path):
    state = fx.filled_state_dict()
    latent_avg = torch.randn(fx.config["style_dim"])
    torch.save({"g_ema": state, "latent_avg": latent_avg}, tmp_path / "converted.pt")
    model, info = load_stylegan2(tmp_path / "converted.pt")
    assert info["format"] == "rosinality" and info["config"] == fx.config and info["w_avg_source"] == "latent_avg"
    assert torch.equal(model.w_avg, latent_avg)
    fx.check("image", model.synthesis(fx.inputs["in.w_plus"], noise_mode="const"))


def test_load_stylegan2_reads_train_checkpoint_with_args(fx, tmp_path):
    """train.py checkpoints hold an argparse.Namespace and no latent_avg; w_avg is then estimated."""
    state = fx.filled_state_dict()
    torch.save({"g_ema": state, "args": argparse.Namespace(size=fx.config["size"])}, tmp_path / "000100.pt")
    model, info = load_stylegan2(tmp_path / "000100.pt")
    assert info["w_avg_source"] == "estimated" and model.w_avg.shape == (fx.config["style_dim"],)
    assert all(torch.equal(model.state_dict()[key], value) for key, value in state.items())
