"""DVA noise predictor against the authors' BeatGANsAutoencModel (fixture dva_unet)."""
import pytest
import torch

from golden_fixtures import load_fixture

from facecontrol.models.dva_unet import DVAUNet

pytestmark = pytest.mark.golden


def test_dva_unet_eps():
    fx = load_fixture("dva_unet")
    model = DVAUNet.from_config(fx.config).eval()
    model.load_state_dict(fx.filled_state_dict(), strict=True)
    with torch.no_grad():
        eps = model(fx.inputs["in.x_t"], fx.inputs["in.t"], fx.inputs["in.z_face"])
    fx.check("eps", eps)
