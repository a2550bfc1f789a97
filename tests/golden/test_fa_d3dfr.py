"""Golden: Face-Adapter D3DFR regressor (ResNet50_nofc, 261 outputs, `fianl_layers` heads)."""
import pytest
import torch
from golden_fixtures import load_fixture

from facecontrol.models.d3dfr import D3DFRRegressor, split_coeffs

pytestmark = pytest.mark.golden


def test_fa_d3dfr_matches_authors():
    fx = load_fixture("fa_d3dfr")
    model = D3DFRRegressor(**fx.config)
    model.load_state_dict(fx.filled_state_dict(), strict=True)
    model.eval()
    with torch.no_grad():
        coeff = model(fx.inputs["in.x"])
    fx.check("coeff", coeff)
    parts = split_coeffs(coeff)
    assert parts["gaze"].shape[1] == 4 and parts["trans"].shape[1] == 3
