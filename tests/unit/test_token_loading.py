"""Loading Face-Adapter token mappers from plain torch.save files (float32 and bfloat16), and iresnet read-outs."""

from collections import OrderedDict

import pytest
import torch

from facecontrol.models.iresnet import IResNet
from facecontrol.models.token_mappers import ID2Token, Image2Token, load_token_mapper

from golden_fixtures import load_fixture, relative_error

# bf16 keeps 8 mantissa bits; on the fa_id2token fixture the bf16 copy measures 6.7e-3 relative error
BF16_RELATIVE_ERROR_MAX = 2e-2


def small_state(cls, seed: int = 0) -> "OrderedDict[str, torch.Tensor]":
    torch.manual_seed(seed)
    model = cls(32, 128, 5, 2)
    for param in model.parameters():
        torch.nn.init.normal_(param, std=0.2)
    return OrderedDict(model.state_dict())


@pytest.mark.parametrize("cls,kind", [(ID2Token, "id2token"), (Image2Token, "image2token")])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_loads_plain_ordereddict_file(tmp_path, cls, kind, dtype):
    state = OrderedDict((k, v.to(dtype)) for k, v in small_state(cls).items())
    path = tmp_path / f"net_{kind}.pth"
    torch.save(state, path)

    model = load_token_mapper(path, kind)

    assert type(model) is cls and not model.training
    assert model.query.shape == (1, 5, 128)
    assert len(getattr(model, cls.decoder_name).layers) == 2
    for key, value in model.state_dict().items():
        assert value.dtype == torch.float32
        assert torch.equal(value, state[key].float()), key


def test_loaded_module_is_deterministic_and_batched(tmp_path):
    torch.save(small_state(ID2Token), tmp_path / "m.pth")
    model = load_token_mapper(tmp_path / "m.pth", "id2token")
    x = torch.randn(3, 7, 32)
    with torch.no_grad():
        batch = model(x)
        again = model(x)
        single = model(x[1:2])
    assert batch.shape == (3, 5, 128)
    assert torch.equal(batch, again)
    torch.testing.assert_close(batch[1:2], single, rtol=1e-5, atol=1e-5)


def test_kind_is_detected_and_checked():
    state = small_state(Image2Token)
    assert isinstance(load_token_mapper(state), Image2Token)
    with pytest.raises(ValueError, match="image2token"):
        load_token_mapper(state, "id2token")
    with pytest.raises(ValueError, match="token mapper"):
        load_token_mapper({"foo.weight": torch.zeros(2)})


def test_strict_keys():
    state = small_state(ID2Token)
    state.pop("id2t.layers.1.norm3.bias")
    with pytest.raises(RuntimeError, match="norm3.bias"):
        load_token_mapper(state, "id2token")


def test_bf16_copy_of_fixture_weights_stays_close_to_fp32(tmp_path):
    fx = load_fixture("fa_id2token")
    state = fx.filled_state_dict()
    torch.save(OrderedDict(state), tmp_path / "fp32.pth")
    torch.save(OrderedDict((k, v.bfloat16()) for k, v in state.items()), tmp_path / "bf16.pth")
    x = fx.inputs["in.x"]

    with torch.no_grad():
        fp32 = load_token_mapper(tmp_path / "fp32.pth", "id2token")(x)
        bf16 = load_token_mapper(tmp_path / "bf16.pth", "id2token")(x)

    fx.check("tokens", fp32)
    err = relative_error(bf16, fp32)
    assert 0 < err <= BF16_RELATIVE_ERROR_MAX, err


def test_iresnet_readouts_shapes():
    model = IResNet(layers=(1, 1, 1, 1)).eval()
    with torch.no_grad():
        assert model.spatial_tokens(torch.rand(2, 3, 256, 256) * 2 - 1).shape == (2, 64, 512)
        assert model.embedding(torch.rand(2, 3, 112, 112) * 2 - 1).shape == (2, 512)
        with pytest.raises(ValueError, match="112"):
            model.embedding(torch.zeros(1, 3, 128, 128))
