"""Golden: Deep3DFaceRecon ReconNetWrapper('resnet50'), 257 outputs, `final_layers` heads."""
import pytest
import torch
from golden_fixtures import load_fixture

from facecontrol.models.d3dfr import Deep3DFaceReconRegressor, split_coeffs

pytestmark = pytest.mark.golden


def test_d3dfr_recon_matches_authors():
    fx = load_fixture("d3dfr_recon")
    model = Deep3DFaceReconRegressor(**fx.config)
    model.load_state_dict(fx.filled_state_dict(), strict=True)
    model.eval()
    with torch.no_grad():
        coeff = model(fx.inputs["in.x"])
    fx.check("coeff", coeff)
    assert "gaze" not in split_coeffs(coeff)
