"""Golden: Face-Adapter Adapting Area Predictor (6-channel ResNet-18 UNet, sigmoid)."""
import pytest
import torch
from golden_fixtures import load_fixture

from facecontrol.models.seg_unet import AdaptingAreaPredictor

pytestmark = pytest.mark.golden


def _model(fx) -> AdaptingAreaPredictor:
    model = AdaptingAreaPredictor(**fx.config)
    model.load_state_dict(fx.filled_state_dict(), strict=True)
    return model.eval()


def test_fa_seg_unet_matches_authors():
    fx = load_fixture("fa_seg_unet")
    model = _model(fx)
    x = fx.inputs["in.x"]
    with torch.no_grad():
        prob = model(x)
    fx.check("prob", prob)
    mask = model.predict_mask(x[:, :3], x[:, 3:])
    expected = fx.outputs["out.prob"]
    decided = (expected - 0.5).abs() > 1e-4  # pixels at the threshold may flip on rounding
    assert torch.equal(mask[decided], (expected[decided] > 0.5).float())
