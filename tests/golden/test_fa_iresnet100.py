"""Golden: insightface iresnet100 as Face-Adapter uses it (tokens at 128, resize from 256, 112 embedding)."""
import pytest
import torch
from golden_fixtures import load_fixture

from facecontrol.models.iresnet import IResNet

pytestmark = pytest.mark.golden


@pytest.fixture(scope="module")
def fixture_and_model():
    fx = load_fixture("fa_iresnet100")
    model = IResNet(**fx.config).eval()
    model.load_state_dict(fx.filled_state_dict(), strict=True)
    assert list(model.state_dict().keys()) == list(fx.shapes.keys())
    return fx, model


def test_tokens_at_128(fixture_and_model):
    fx, model = fixture_and_model
    with torch.no_grad():
        fx.check("tokens", model.tokens(fx.inputs["in.x128"]))


def test_spatial_tokens_from_256_crop(fixture_and_model):
    fx, model = fixture_and_model
    with torch.no_grad():
        fx.check("tokens_from_256", model.spatial_tokens(fx.inputs["in.img256"]))


def test_embedding_at_112(fixture_and_model):
    fx, model = fixture_and_model
    with torch.no_grad():
        fx.check("id512", model.embedding(fx.inputs["in.x112"]))
