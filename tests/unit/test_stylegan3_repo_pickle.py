"""StyleGAN2 pickles written by NVlabs' stylegan3 repository load through the restricted unpickler.

That repository's ``training/networks_stylegan2.py`` Generator takes the synthesis arguments as
``**synthesis_kwargs``, so a snapshot records them flat beside ``z_dim`` (with ``fused_modconv_default=
'inference_only'`` from its train.py, ``mapping_kwargs`` as a ``dnnlib.EasyDict``) instead of
stylegan2-ada-pytorch's nested ``synthesis_kwargs``. Its alias-free StyleGAN3 generator is refused with
a message naming the file.
"""

from __future__ import annotations

import pickle
import types
from contextlib import contextmanager

import pytest
import torch
from torch import nn

from facecontrol.models.stylegan2 import load_stylegan2
from facecontrol.models.stylegan2_nvlabs import Generator, UnsupportedGeneratorError, load_nvlabs_pkl

from filled_weights.pie import _fill, _persistent_tree, _stand_in_persistence, stand_in_modules

ADA_KWARGS = {
    "z_dim": 32,
    "c_dim": 0,
    "w_dim": 32,
    "img_resolution": 16,
    "img_channels": 3,
    "mapping_kwargs": {"num_layers": 2},
    "synthesis_kwargs": {"channel_base": 256, "channel_max": 32, "num_fp16_res": 2, "conv_clamp": 256},
}


class EasyDict(dict):
    """Pickles by reference as ``dnnlib.util.EasyDict``, as stylegan3 snapshots store their kwargs."""


@contextmanager
def stand_in_dnnlib():
    package, util = types.ModuleType("dnnlib"), types.ModuleType("dnnlib.util")
    EasyDict.__module__, EasyDict.__qualname__ = "dnnlib.util", "EasyDict"
    util.EasyDict = EasyDict
    package.util = util
    with stand_in_modules({"dnnlib": package, "dnnlib.util": util}):
        yield


def stylegan3_repo_kwargs() -> dict:
    """The G_ema init kwargs a stylegan3-repository ``--cfg=stylegan2`` run records: flat synthesis arguments."""
    flat = {key: value for key, value in ADA_KWARGS.items() if key not in ("mapping_kwargs", "synthesis_kwargs")}
    return EasyDict(
        **flat,
        mapping_kwargs=EasyDict(ADA_KWARGS["mapping_kwargs"]),
        **ADA_KWARGS["synthesis_kwargs"],
        fused_modconv_default="inference_only",
    )


def write_snapshot(path, module: nn.Module, init_kwargs: dict) -> None:
    record = _persistent_tree(module, init_kwargs)
    snapshot = {
        "G": record,
        "D": None,
        "G_ema": record,
        "augment_pipe": None,
        "training_set_kwargs": EasyDict(class_name="training.dataset.ImageFolderDataset"),
    }
    with _stand_in_persistence(), stand_in_dnnlib(), open(path, "wb") as handle:
        pickle.dump(snapshot, handle, protocol=4)


@pytest.fixture(scope="module")
def filled() -> Generator:
    generator = Generator(**ADA_KWARGS).eval()
    generator.load_state_dict(_fill(generator, seed=14))
    return generator


@torch.no_grad()
def test_stylegan3_repo_layout_loads_and_matches(tmp_path, filled):
    path = tmp_path / "stylegan2-ffhq-snapshot.pkl"
    write_snapshot(path, filled, stylegan3_repo_kwargs())

    rebuilt = load_stylegan2(path)

    info = rebuilt.load_info

    assert isinstance(rebuilt, Generator) and info["layout"] == "stylegan3-repo"
    assert rebuilt.state_dict().keys() == filled.state_dict().keys()
    z = torch.randn(2, 32, generator=torch.Generator().manual_seed(0))
    ws = rebuilt.mapping(z, truncation_psi=0.7)
    assert torch.equal(ws, filled.mapping(z, truncation_psi=0.7))
    assert torch.equal(rebuilt.synthesis(ws), filled.synthesis(ws))


@torch.no_grad()
def test_stylegan2_ada_layout_still_loads(tmp_path, filled):
    path = tmp_path / "ada.pkl"
    write_snapshot(path, filled, ADA_KWARGS)
    rebuilt = load_nvlabs_pkl(path)
    info = rebuilt.load_info
    assert info["layout"] == "stylegan2-ada"
    ws = filled.mapping(torch.randn(1, 32))
    assert torch.equal(rebuilt.synthesis(ws), filled.synthesis(ws))


class _SG3Input(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(8, 4))
        self.affine = nn.Linear(32, 4)
        self.register_buffer("transform", torch.eye(3))


def stylegan3_generator_tree() -> nn.Module:
    """A module tree with networks_stylegan3's key names (synthesis.input.*, synthesis.L0_36_512.*)."""
    root, synthesis = nn.Module(), nn.Module()
    synthesis.input = _SG3Input()
    synthesis.add_module("L0_36_512", nn.Linear(4, 4))
    root.synthesis = synthesis
    root.mapping = nn.Linear(32, 32)
    return root


def test_stylegan3_generator_is_refused_with_the_file_named(tmp_path):
    path = tmp_path / "stylegan3-t-ffhq-1024x1024.pkl"
    kwargs = EasyDict(
        z_dim=32,
        c_dim=0,
        w_dim=32,
        img_resolution=16,
        img_channels=3,
        mapping_kwargs=EasyDict(num_layers=2),
        channel_base=32768,
        channel_max=512,
        magnitude_ema_beta=0.999,
        conv_clamp=256,
    )
    record = _persistent_tree(stylegan3_generator_tree(), kwargs)
    record.meta["class_name"] = "Generator"
    with _stand_in_persistence(), stand_in_dnnlib(), open(path, "wb") as handle:
        pickle.dump({"G_ema": record}, handle, protocol=4)

    with pytest.raises(UnsupportedGeneratorError, match="StyleGAN3") as refused:
        load_stylegan2(path)
    assert path.name in str(refused.value) and "magnitude_ema_beta" in str(refused.value)


def test_unknown_generator_arguments_fail_with_a_message(tmp_path, filled):
    path = tmp_path / "odd.pkl"
    kwargs = stylegan3_repo_kwargs()
    kwargs["some_new_option"] = 1
    write_snapshot(path, filled, kwargs)
    with pytest.raises(UnsupportedGeneratorError, match="some_new_option") as refused:
        load_stylegan2(path)
    assert path.name in str(refused.value)
