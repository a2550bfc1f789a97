"""The 3DMM regressor and seg-UNet loaders read files written in the released layouts."""

import pytest
import torch

from facecontrol.models.d3dfr import (
    D3DFRRegressor,
    Deep3DFaceReconRegressor,
    load_d3dfr,
    load_deep3dfacerecon,
    split_coeffs,
)
from facecontrol.models.seg_unet import load_seg_unet

from golden_fixtures import load_fixture


@pytest.fixture(scope="module")
def fa_state():
    return load_fixture("fa_d3dfr").filled_state_dict()


@pytest.fixture(scope="module")
def recon_state():
    return load_fixture("d3dfr_recon").filled_state_dict()


def _assert_same_weights(model: torch.nn.Module, state: dict) -> None:
    loaded = model.state_dict()
    assert loaded.keys() == state.keys()
    for key, value in state.items():
        assert torch.equal(loaded[key], value), key


@pytest.mark.parametrize("prefix", ["", "module."])
def test_face_adapter_d3dfr_file(tmp_path, fa_state, prefix):
    path = tmp_path / "d3dfr_res50_nofc.pth"
    torch.save({prefix + k: v for k, v in fa_state.items()}, path)
    model = load_d3dfr(path)
    assert isinstance(model, D3DFRRegressor) and not model.training
    _assert_same_weights(model, fa_state)


def test_deep3dfacerecon_epoch_file(tmp_path, recon_state):
    path = tmp_path / "epoch_20.pth"
    optimizer_state = {"state": {0: {"step": torch.tensor(3.0)}}, "param_groups": [{"lr": 1e-4, "params": [0]}]}
    torch.save({"net_recon": recon_state, "opt_00": optimizer_state, "epoch": 20}, path)
    model = load_deep3dfacerecon(path)
    assert isinstance(model, Deep3DFaceReconRegressor) and not model.training
    _assert_same_weights(model, recon_state)


def test_missing_key_is_named(fa_state):
    state = dict(fa_state)
    del state["fianl_layers.7.bias"]
    with pytest.raises(ValueError, match=r"missing keys \(1\): fianl_layers\.7\.bias"):
        load_d3dfr(state)


def test_extra_key_is_named(tmp_path, recon_state):
    path = tmp_path / "epoch_20.pth"
    torch.save({"net_recon": {**recon_state, "final_layers.7.weight": torch.zeros(1)}, "opt_00": {}}, path)
    with pytest.raises(ValueError, match=r"unexpected keys \(1\): final_layers\.7\.weight") as info:
        load_deep3dfacerecon(path)
    assert "epoch_20.pth" in str(info.value)


def test_face_adapter_heads_rejected_by_deep3dfacerecon(recon_state):
    renamed = {k.replace("final_layers", "fianl_layers"): v for k, v in recon_state.items()}
    with pytest.raises(ValueError, match="fianl_layers.0.weight"):
        load_deep3dfacerecon({"net_recon": renamed})


def test_seg_unet_file(tmp_path):
    state = load_fixture("fa_seg_unet").filled_state_dict()
    path = tmp_path / "net_seg_res18.pth"
    torch.save(state, path)
    _assert_same_weights(load_seg_unet(path), state)


def test_missing_file_names_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        load_d3dfr(tmp_path / "nowhere.pth")


def test_split_coeffs_layout():
    coeffs = torch.arange(261.0).unsqueeze(0)
    parts = split_coeffs(coeffs)
    sizes = {name: part.shape[1] for name, part in parts.items()}
    assert sizes == {"id": 80, "exp": 64, "tex": 80, "angle": 3, "gamma": 27, "trans": 3, "gaze": 4}
    assert parts["angle"][0, 0] == 224 and parts["gaze"][0, -1] == 260
    assert "gaze" not in split_coeffs(coeffs[:, :257])
    with pytest.raises(ValueError):
        split_coeffs(coeffs[:, :200])
