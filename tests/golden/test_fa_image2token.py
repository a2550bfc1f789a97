"""Golden: Face-Adapter Image2Token against the authors' recorded output."""
import pytest
import torch
from golden_fixtures import load_fixture

from facecontrol.models.token_mappers import Image2Token

pytestmark = pytest.mark.golden


def test_image2token_matches_authors():
    fx = load_fixture("fa_image2token")
    model = Image2Token(**fx.config).eval()
    model.load_state_dict(fx.filled_state_dict(), strict=True)
    with torch.no_grad():
        tokens = model(fx.inputs["in.x"])
    fx.check("tokens", tokens)
