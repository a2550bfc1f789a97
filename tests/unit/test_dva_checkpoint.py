"""DVA checkpoint readers on small files written in the released Lightning layouts."""

import json
import sys
import types

import pytest
import torch

from facecontrol.models.dva_checkpoint import (
    load_lightning_checkpoint,
    read_dva_checkpoint,
    read_dva_classifier,
    split_dva_state,
)
from facecontrol.models.dva_face_encoder import build_dva_face_encoder
from facecontrol.models.dva_unet import DVAUNet, build_dva_unet

from golden_fixtures import golden_dir, load_fixture

SMALL_UNET = dict(
    image_size=16,
    model_channels=32,
    channel_mult=(1, 2),
    num_res_blocks=1,
    attention_resolutions=(8,),
    embed_channels=64,
    dropout=0.0,
)


def _small_unet_state(seed: int) -> dict:
    torch.manual_seed(seed)
    return DVAUNet(**SMALL_UNET).state_dict()


def _lightning_file(path, state_dict, extra=None):
    checkpoint = {
        "epoch": 51,
        "global_step": 1000000,
        "pytorch-lightning_version": "1.4.5",
        "state_dict": state_dict,
        "optimizer_states": [],
        "lr_schedulers": [],
    }
    checkpoint.update(extra or {})
    torch.save(checkpoint, path)
    return path


def _dva_layout(ema_unet, train_unet, encoder):
    state = {}
    for prefix, unet in (("ema_model.", ema_unet), ("model.", train_unet)):
        state.update({prefix + k: v for k, v in unet.items()})
        state.update({prefix + "encoder." + k: v for k, v in encoder.items()})
    return state


def test_read_dva_checkpoint_selects_ema_and_splits(tmp_path):
    ema, train = _small_unet_state(0), _small_unet_state(1)
    encoder = {"linear.weight": torch.randn(512, 614), "linear.bias": torch.randn(512)}
    path = _lightning_file(tmp_path / "epoch=51-step=1000000.ckpt", _dva_layout(ema, train, encoder))

    states = read_dva_checkpoint(path)
    assert states.prefix == "ema_model."
    assert set(states.unet) == set(ema) and set(states.encoder) == set(encoder)
    assert all(torch.equal(states.unet[k], ema[k]) for k in ema)
    assert torch.equal(states.encoder["linear.weight"], encoder["linear.weight"])

    training = read_dva_checkpoint(path, weights="model")
    assert all(torch.equal(training.unet[k], train[k]) for k in train)

    unet = build_dva_unet(states.unet, SMALL_UNET)
    with torch.no_grad():
        eps = unet(torch.randn(1, 3, 16, 16), torch.tensor([800]), torch.randn(1, 64))
    assert eps.shape == (1, 3, 16, 16) and torch.isfinite(eps).all()


def test_split_matches_released_key_sets():
    """Every fixture key, behind the checkpoint prefixes, lands in the module that owns it."""
    unet_keys = json.loads((golden_dir() / "dva_unet" / "shapes.json").read_text())
    encoder_keys = json.loads((golden_dir() / "dva_face_code" / "shapes.json").read_text())
    placeholder = torch.empty(0)
    state = {f"ema_model.{k}": placeholder for k in unet_keys}
    state.update({f"ema_model.encoder.{k}": placeholder for k in encoder_keys})
    state.update({f"model.{k}": placeholder for k in unet_keys})

    states = split_dva_state(state)
    with torch.device("meta"):
        unet = DVAUNet()
    assert set(states.unet) == set(unet.state_dict()) == set(unet_keys)
    assert set(states.encoder) == set(encoder_keys)


def test_encoder_state_from_checkpoint_loads_strictly():
    fx = load_fixture("dva_face_code")
    filled = fx.filled_state_dict()
    state = {"ema_model.input_blocks.0.0.weight": torch.zeros(1)}
    state.update({f"ema_model.encoder.{k}": v for k, v in filled.items()})
    encoder = build_dva_face_encoder(split_dva_state(state).encoder)
    assert torch.equal(encoder.linear.weight, filled["linear.weight"])


def test_missing_prefix_is_reported(tmp_path):
    path = _lightning_file(tmp_path / "other.ckpt", {"net.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="ema_model"):
        read_dva_checkpoint(path)


def test_classifier_checkpoint(tmp_path):
    fx = load_fixture("dva_cls_edit")
    filled = fx.filled_state_dict()
    path = _lightning_file(tmp_path / "last.ckpt", filled)
    classifier = read_dva_classifier(path)
    assert torch.equal(classifier.weight, filled["classifier.weight"])
    assert torch.equal(classifier.conds_std, filled["conds_std"])
    assert classifier.conds_mean.shape == (1, 512)
    ema = read_dva_classifier(path, use_ema=True)
    assert torch.equal(ema.weight, filled["ema_classifier.weight"])


def _fake_lightning_modules(monkeypatch):
    """Register stand-in `pytorch_lightning` classes so a test file can pickle Lightning metadata."""
    parsing = types.ModuleType("pytorch_lightning.utilities.parsing")
    callbacks = types.ModuleType("pytorch_lightning.callbacks.model_checkpoint")

    class AttributeDict(dict):
        pass

    class ModelCheckpoint:
        pass

    AttributeDict.__module__, AttributeDict.__qualname__ = parsing.__name__, "AttributeDict"
    ModelCheckpoint.__module__, ModelCheckpoint.__qualname__ = callbacks.__name__, "ModelCheckpoint"
    parsing.AttributeDict, callbacks.ModelCheckpoint = AttributeDict, ModelCheckpoint
    for name in ("pytorch_lightning", "pytorch_lightning.utilities", "pytorch_lightning.callbacks"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, parsing.__name__, parsing)
    monkeypatch.setitem(sys.modules, callbacks.__name__, callbacks)
    return AttributeDict, ModelCheckpoint


def test_lightning_metadata_objects_are_read_without_their_classes(tmp_path, monkeypatch):
    with monkeypatch.context() as patch:
        AttributeDict, ModelCheckpoint = _fake_lightning_modules(patch)
        hparams = AttributeDict(name="diffusion_video_autoencoder", T=1000)
        extra = {"hyper_parameters": hparams, "callbacks": {ModelCheckpoint: {"best_model_score": torch.tensor(0.5)}}}
        path = _lightning_file(tmp_path / "last.ckpt", load_fixture("dva_cls_edit").filled_state_dict(), extra)

    checkpoint = load_lightning_checkpoint(path)
    assert checkpoint["hyper_parameters"]["T"] == 1000
    assert read_dva_classifier(path).weight.shape == (40, 512)


class _RunsCode:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_foreign_pickled_code_is_refused(tmp_path):
    path = _lightning_file(tmp_path / "bad.ckpt", {"classifier.weight": torch.zeros(40, 512)}, {"payload": _RunsCode()})
    with pytest.raises(ValueError, match="builtins.print"):
        load_lightning_checkpoint(path)
