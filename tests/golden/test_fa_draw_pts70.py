"""Golden: Face-Adapter draw_pts70_batch (rainbow dots, R/B swapped, inverse-warped to 512, [-1,1] tensor)."""
import pytest
import torch
from golden_fixtures import load_fixture

from facecontrol.face.draw import draw_pts70

pytestmark = pytest.mark.golden


def test_fa_draw_pts70_matches_authors():
    fx = load_fixture("fa_draw_pts70")
    cfg = fx.config
    images, control = draw_pts70(fx.inputs["in.lm68"], fx.inputs["in.gaze"], fx.inputs["in.warp_mat256"],
                                 dst_size=cfg["dst_size"], canvas_size=cfg["canvas"], radius=cfg["radius"])
    fx.check("pts70_uint8", torch.from_numpy(images))
    fx.check("control", control)
    assert control.dtype == torch.float32
    assert control.min() >= -1 and control.max() <= 1
    assert (images.reshape(-1, 3).max(axis=0) > 0).all(), "drawing must not be black"
