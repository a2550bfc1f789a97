"""Golden: Face-Adapter ID2Token against the authors' recorded output."""
import pytest
import torch
from golden_fixtures import load_fixture

from facecontrol.models.token_mappers import ID2Token

pytestmark = pytest.mark.golden


def test_id2token_matches_authors():
    fx = load_fixture("fa_id2token")
    model = ID2Token(**fx.config).eval()
    model.load_state_dict(fx.filled_state_dict(), strict=True)
    with torch.no_grad():
        tokens = model(fx.inputs["in.x"])
    fx.check("tokens", tokens)
