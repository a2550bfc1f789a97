"""VGG-Face descriptor loader: pytorch-mcn's vgg_face_dag.pth layout, filled weights, real face crops."""

from __future__ import annotations

import pytest
import torch

from facecontrol.models.vgg_face import DESCRIPTOR_DIM, NUM_IDENTITIES, VGGFace, load_vgg_face

from filled_weights.pie import _fill
from pie_stand_ins import astronaut_crop

# The released file's keys, in its order (conv blocks, then the three fully connected layers).
RELEASED_SHAPES = {
    **{
        f"{name}.weight": (out, inp, 3, 3)
        for name, inp, out in [
            ("conv1_1", 3, 64),
            ("conv1_2", 64, 64),
            ("conv2_1", 64, 128),
            ("conv2_2", 128, 128),
            ("conv3_1", 128, 256),
            ("conv3_2", 256, 256),
            ("conv3_3", 256, 256),
            ("conv4_1", 256, 512),
            ("conv4_2", 512, 512),
            ("conv4_3", 512, 512),
            ("conv5_1", 512, 512),
            ("conv5_2", 512, 512),
            ("conv5_3", 512, 512),
        ]
    },
    "fc6.weight": (4096, 25088),
    "fc7.weight": (4096, 4096),
    "fc8.weight": (2622, 4096),
}


@pytest.fixture(scope="module")
def released_file(tmp_path_factory):
    state = _fill(VGGFace(), seed=21)
    path = tmp_path_factory.mktemp("vgg_face") / "vgg_face_dag.pth"
    torch.save(state, path)
    return path, state


def test_key_names_and_shapes_are_the_released_ones():
    state = VGGFace().state_dict()
    for key, shape in RELEASED_SHAPES.items():
        assert tuple(state[key].shape) == shape, key
        assert tuple(state[key.replace("weight", "bias")].shape) == (shape[0],)
    assert len(state) == 2 * (13 + 3)


@torch.no_grad()
def test_loader_reads_the_file_and_gives_unit_descriptors(released_file):
    path, state = released_file
    net = load_vgg_face(path)
    assert all(torch.equal(net.state_dict()[k], v) for k, v in state.items())
    crop = astronaut_crop(256)
    descriptor = net(crop)
    assert descriptor.shape == (1, DESCRIPTOR_DIM)
    assert torch.allclose(descriptor.norm(dim=-1), torch.ones(1), atol=1e-5)
    assert net.identity_logits(crop).shape == (1, NUM_IDENTITIES)
    flipped = net(crop.flip(-1))  # a different image gives a different descriptor
    assert not torch.allclose(flipped, descriptor)


def test_a_wrong_layout_is_refused_with_the_keys(released_file, tmp_path):
    _, state = released_file
    renamed = {("features." + k if k.startswith("conv") else k): v for k, v in state.items()}
    path = tmp_path / "vgg_face_torchvision_names.pth"
    torch.save(renamed, path)
    with pytest.raises(ValueError, match="missing keys.*conv1_1.weight"):
        load_vgg_face(path)
