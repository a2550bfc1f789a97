"""Golden: Face-Adapter BFM get_lm68 on the fixture's synthetic .mat, and identity recombination."""
import pytest
import torch
from golden_fixtures import load_fixture

from facecontrol.face.bfm import BFMProjector, recombine_identity

pytestmark = pytest.mark.golden


def _projector(fx) -> BFMProjector:
    config = dict(fx.config)
    mat_name = config.pop("bfm_model_path").split()[0]
    return BFMProjector(fx.folder / mat_name, **config)


def test_fa_bfm_matches_authors():
    fx = load_fixture("fa_bfm")
    bfm = _projector(fx)
    src, drive = fx.inputs["in.coeff_src"], fx.inputs["in.coeff_drive"]
    fx.check("lm68_src", bfm.get_lm68(src))
    fx.check("lm68_drive", bfm.get_lm68(drive))
    recombined = recombine_identity(src, drive)
    fx.check("coeff_recombined", recombined)
    fx.check("lm68_recombined", bfm.get_lm68(recombined))
    assert torch.equal(drive, fx.inputs["in.coeff_drive"]), "recombination must not modify its inputs"


def test_fa_bfm_vertices_contain_landmarks():
    fx = load_fixture("fa_bfm")
    bfm = _projector(fx)
    coeffs = fx.inputs["in.coeff_src"]
    geometry = bfm.vertices(coeffs)
    assert geometry["vertices_cam"].shape == (coeffs.shape[0], bfm.num_vertices, 3)
    lm = bfm.flip_y(geometry["projected"][:, bfm.keypoints])
    torch.testing.assert_close(lm, bfm.get_lm68(coeffs))
