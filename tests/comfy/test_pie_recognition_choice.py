"""PIE's recognition network is a setting: IR-SE50 (default) or VGG-Face (PIE's), each resolved from the model
folders like the pack's other files; VGG-Face is read from a filled file in pytorch-mcn's released layout."""

from __future__ import annotations

import pytest
import torch

from facecontrol.models.vgg_face import VGGFace

from filled_weights.pie import _fill
from pie_stand_ins import astronaut_crop

pytestmark = pytest.mark.comfy


@pytest.fixture(scope="module")
def pie_nodes(comfy_in_process):
    from facecontrol.nodes import pie_nodes

    return pie_nodes


@pytest.fixture()
def stylegan2_folder(pie_nodes, tmp_path, monkeypatch):
    import folder_paths

    from facecontrol.nodes.common import register_model_folders

    register_model_folders()
    folder = tmp_path / "stylegan2"
    folder.mkdir()
    extensions = folder_paths.folder_names_and_paths["stylegan2"][1]
    monkeypatch.setitem(folder_paths.folder_names_and_paths, "stylegan2", ([str(folder)], extensions))
    return folder


def test_settings_nodes_offer_the_recognition_network(pie_nodes):
    for node in (pie_nodes.PIEEmbedSettings, pie_nodes.PIEEditSettings):
        inputs = {i.id: i for i in node.define_schema().inputs}
        assert inputs["recognition_net"].options == ["ir_se50", "vgg_face"]
        assert inputs["recognition_net"].default == "ir_se50"
    embed = pie_nodes.PIEEmbedSettings.execute(
        steps_w=1, steps_wplus=0, lr=0.01, optimizer="adam", seed=0, chunk=0, recognition_net="vgg_face"
    ).args[0]
    assert embed.recognition_net == "vgg_face"
    edit = pie_nodes.PIEEditSettings.execute(steps=1, lr=0.01, optimizer="adam", recognition_net="vgg_face").args[0]
    assert edit.recognition_net == "vgg_face"
    assert (
        pie_nodes.PIEEmbedSettings.execute(steps_w=1, steps_wplus=0, lr=0.01, optimizer="adam", seed=0, chunk=0)
        .args[0]
        .recognition_net
        == "ir_se50"
    )


@torch.no_grad()
def test_vgg_face_is_resolved_from_the_model_folder_and_read_in_its_released_layout(pie_nodes, stylegan2_folder):
    from facecontrol.model_files import ModelFileNotFound

    with pytest.raises(ModelFileNotFound, match="vgg_face_dag.pth"):
        pie_nodes.recognition_patcher("vgg_face")
    state = _fill(VGGFace(), seed=21)
    torch.save(state, stylegan2_folder / "vgg_face_dag.pth")
    net = pie_nodes.recognition_patcher("vgg_face").model
    assert isinstance(net, VGGFace)
    assert all(torch.equal(net.state_dict()[key], value) for key, value in state.items())
    descriptor = net(astronaut_crop(256))
    assert descriptor.shape == (1, 4096) and torch.allclose(descriptor.norm(dim=-1), torch.ones(1), atol=1e-5)
    with pytest.raises(ValueError, match="recognition_net"):
        pie_nodes.recognition_patcher("arcface")
