"""DVA semantic encoder against the authors' DiffusionVideoAutoencoder (fixture dva_face_code)."""
import pytest
import torch
import torch.nn.functional as F

from golden_fixtures import load_fixture

from facecontrol.models.dva_face_encoder import DVAFaceEncoder

pytestmark = pytest.mark.golden


@pytest.fixture(scope="module")
def fixture_and_encoder():
    fx = load_fixture("dva_face_code")
    encoder = DVAFaceEncoder().eval()
    encoder.load_state_dict(fx.filled_state_dict(), strict=True)
    return fx, encoder


def test_aliased_landmark_keys_take_base_net_values(fixture_and_encoder):
    fx, encoder = fixture_and_encoder
    filled = fx.filled_state_dict()
    in_effect = encoder.lndnet.backbone.base_net[0][3].conv[1][0].weight
    assert torch.equal(in_effect, filled["lndnet.backbone.base_net.0.3.conv.1.0.weight"])
    assert not torch.equal(in_effect, filled["lndnet.backbone.pretrain_net.features.3.conv.1.0.weight"])


def test_identity_and_landmark_codes(fixture_and_encoder):
    fx, encoder = fixture_and_encoder
    img = fx.inputs["in.img"]
    with torch.no_grad():
        fx.check("z_id", encoder.id_forward(img))
        fx.check("lnd_raw136", encoder.lndnet.raw(img))
        fx.check("z_lnd", encoder.landmarks(img))


def test_face_codes(fixture_and_encoder):
    fx, encoder = fixture_and_encoder
    img, z_id, z_lnd = fx.inputs["in.img"], fx.inputs["in.z_id_given"], fx.inputs["in.z_lnd_given"]
    with torch.no_grad():
        fx.check("z_face", encoder(img))
        fx.check("z_face_given", encoder.face_code(z_id, z_lnd))
        fx.check("z_face_with_id", encoder.forward_with_id(z_id, img))


def test_parsing_and_masks(fixture_and_encoder):
    fx, encoder = fixture_and_encoder
    img = fx.inputs["in.img"]
    with torch.no_grad():
        parsing = encoder.bgnet.segment(img)
        fx.check("bisenet_logits_avgpool8", F.avg_pool2d(parsing.logits, 8))
        fx.check("segmentation", parsing.labels.to(torch.uint8))
        fx.check("mask_video", encoder.face_mask(img, for_video=True))
        fx.check("mask_image", encoder.face_mask(img, for_video=False))
