"""Golden test: NVlabs stylegan2-ada-pytorch generator rebuilt from a real snapshot pickle."""
import math

import pytest
import torch
from golden_fixtures import load_fixture

from facecontrol.models.stylegan2 import load_stylegan2
from facecontrol.models.stylegan2_nvlabs import Generator, load_nvlabs_pkl

pytestmark = pytest.mark.golden

PSI = 0.7  # the truncation of the w_psi07 output
LR_MULTIPLIER = 0.01  # MappingNetwork's default, undone for the rescaled-mapping output


@pytest.fixture(scope="module")
def fx():
    return load_fixture("sg2_nvlabs_pkl")


@pytest.fixture(scope="module")
def loaded(fx):
    return load_nvlabs_pkl(fx.folder / fx.config["pickle"])


def generator_kwargs(fx) -> dict:
    kwargs = {k: v for k, v in fx.config["G_kwargs"].items() if k != "class_name"}
    return {**kwargs, **fx.config["common_kwargs"]}


def test_pickle_rebuilds_the_filled_generator(fx, loaded):
    generator, info = loaded
    assert info["format"] == "nvlabs"
    assert generator.num_ws == fx.config["num_ws"]
    assert generator.resolution == fx.config["common_kwargs"]["img_resolution"]
    state = generator.state_dict()
    filled = fx.filled_state_dict()
    assert list(state) == list(fx.shapes)
    for key, value in filled.items():
        assert torch.equal(state[key], value), key


@torch.no_grad()
def test_synthesis(fx, loaded):
    generator, _ = loaded
    fx.check("image", generator.synthesis(fx.inputs["in.ws"], noise_mode="const"))


@torch.no_grad()
def test_mapping(fx, loaded):
    generator, _ = loaded
    z = fx.inputs["in.z"]
    fx.check("w", generator.mapping(z))
    fx.check("w_psi07", generator.mapping(z, truncation_psi=PSI))


@torch.no_grad()
def test_image_from_z(fx, loaded):
    generator, _ = loaded
    fx.check("image_from_z", generator(fx.inputs["in.z"], truncation_psi=1, noise_mode="const"))


@torch.no_grad()
def test_w_mapping_rescaled(fx):
    kwargs = generator_kwargs(fx)
    state = fx.filled_state_dict()
    factor = math.sqrt(kwargs["z_dim"]) / LR_MULTIPLIER
    for idx in range(kwargs["mapping_kwargs"]["num_layers"]):
        state[f"mapping.fc{idx}.weight"] = state[f"mapping.fc{idx}.weight"] * factor
    generator = Generator(**kwargs).eval()
    generator.load_state_dict(state, strict=True)
    fx.check("w_mapping_rescaled", generator.mapping(fx.inputs["in.z"]))


@torch.no_grad()
def test_load_stylegan2_dispatches_to_nvlabs(fx):
    generator, info = load_stylegan2(fx.folder / fx.config["pickle"])
    assert isinstance(generator, Generator) and info["format"] == "nvlabs"
    fx.check("image", generator.synthesis(fx.inputs["in.ws"], noise_mode="const"))
