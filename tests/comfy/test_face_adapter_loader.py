"""The Face-Adapter loader reads a bundle written in the released layout (bf16 and fp32 .pth, a diffusers
ControlNet folder, a transformers vision folder) and the token nodes compute what the networks compute."""

from __future__ import annotations

import shutil

import pytest
import torch

from media import load_rgb

pytestmark = pytest.mark.comfy


@pytest.fixture(scope="module")
def fan(comfy_in_process):
    from facecontrol.nodes import face_adapter_nodes

    return face_adapter_nodes


@pytest.fixture()
def bundle_dir(fan, tmp_path, monkeypatch):
    import folder_paths

    from facecontrol.nodes.common import register_model_folders

    from filled_weights.face_adapter import install

    install(tmp_path)
    register_model_folders()
    exts = folder_paths.folder_names_and_paths["face_adapter"][1]
    monkeypatch.setitem(folder_paths.folder_names_and_paths, "face_adapter", ([str(tmp_path / "face_adapter")], exts))
    return tmp_path / "face_adapter"


def test_released_layout_loads_and_tokens_match_the_networks(fan, bundle_dir):
    from transformers import CLIPVisionModel
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    from facecontrol.models.iresnet import load_iresnet100
    from facecontrol.models.token_mappers import load_token_mapper

    assert torch.load(bundle_dir / "net_id2token.pth", weights_only=True)["query"].dtype == torch.bfloat16
    bundle = fan.LoadFaceAdapter.execute().args[0]
    assert all(p.dtype == torch.float32 for p in bundle.id2token.model.parameters())

    photo = torch.from_numpy(load_rgb("astronaut.png")).float() / 255.0
    crop256 = photo[None, :256, 150:406]
    crop512 = photo[None, :512, :512]
    with torch.no_grad():
        iresnet = load_iresnet100(bundle_dir / "third_party" / "insightface_glint360k.pth")
        id2token = load_token_mapper(bundle_dir / "net_id2token.pth")
        x = crop256.movedim(-1, 1) * 2 - 1
        small = torch.nn.functional.interpolate(x, size=(128, 128), mode="bilinear", align_corners=False)
        expected_id = id2token(iresnet(small))
        vision = CLIPVisionModel.from_pretrained(str(bundle_dir / "vision_encoder")).eval()
        image2token = load_token_mapper(bundle_dir / "net_image2token.pth")
        pixels = CLIPImageProcessorPil()(
            images=(crop512[0].numpy() * 255).round().astype("uint8"), return_tensors="pt"
        ).pixel_values
        expected_attr = image2token(vision(pixel_values=pixels).last_hidden_state)

    positive, negative = fan.FaceAdapterIdentity.execute(
        bundle, crop256, [[torch.zeros(1, 77, 768), {}]], fan.NEGATIVES[0]
    ).args
    assert positive[0][0].shape == (1, 77, 768)
    assert torch.allclose(positive[0][0], expected_id, atol=1e-4, rtol=1e-4)
    assert torch.equal(negative[0][0], torch.zeros(1, 77, 768))
    tokens = fan.FaceAdapterAttributes.execute(bundle, crop512).args[0]
    assert torch.allclose(tokens, expected_attr, atol=1e-4, rtol=1e-4)

    # the paper's swap negative: the target's identity tokens
    _, paper_negative = fan.FaceAdapterIdentity.execute(
        bundle, crop256, [[torch.zeros(1, 77, 768), {}]], fan.NEGATIVES[1], crop256.flip(2)
    ).args
    assert not torch.allclose(paper_negative[0][0], positive[0][0])


def test_missing_pieces_are_named_with_their_paths(fan, bundle_dir):
    shutil.rmtree(bundle_dir / "vision_encoder")
    (bundle_dir / "net_id2token.pth").unlink()
    with pytest.raises(FileNotFoundError) as err:
        fan.LoadFaceAdapter.execute()
    text = str(err.value)
    assert "3 file(s) missing" in text  # the vision folder holds two
    assert str(bundle_dir / "net_id2token.pth") in text
    assert str(bundle_dir / "vision_encoder" / "config.json") in text
    assert "FaceAdapter/FaceAdapter" in text


def test_wrong_crop_sizes_are_refused(fan, bundle_dir):
    bundle = fan.LoadFaceAdapter.execute().args[0]
    with pytest.raises(ValueError, match=r"'source_256' must be 256x256"):
        fan.FaceAdapterIdentity.execute(
            bundle, torch.rand(1, 512, 512, 3), [[torch.zeros(1, 77, 768), {}]], fan.NEGATIVES[0]
        )
    with pytest.raises(ValueError, match=r"needs 'target_256'"):
        fan.FaceAdapterIdentity.execute(
            bundle, torch.rand(1, 256, 256, 3), [[torch.zeros(1, 77, 768), {}]], fan.NEGATIVES[1]
        )
    with pytest.raises(ValueError, match=r"'crops_512' must be Face-Adapter 512 crops"):
        fan.FaceAdapterAttributes.execute(bundle, torch.rand(1, 256, 256, 3))
