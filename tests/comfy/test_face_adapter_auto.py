"""Face-Adapter's `auto` choices follow the released files: SCRFD, d3dfr + BFM, the seg UNet / BiSeNet and the
release UNet when their files resolve, the open path otherwise, and the nodes say which ran. Also: the release
UNet loaded by ComfyUI's own loader takes the same step as diffusers' UNet2DConditionModel, the ControlNet
config checks name the field and value, the authors' "largest" key, and BFM canvas smoothing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from media import load_rgb

CFG = 5.0
T0, T1 = 899, 859


@pytest.fixture(scope="module")
def nodes(comfy_in_process):
    import comfy.cli_args

    if not torch.cuda.is_available():
        comfy.cli_args.args.cpu = True
    from facecontrol.nodes import face_adapter_nodes, face_nodes, spatial_nodes

    return face_nodes, spatial_nodes, face_adapter_nodes


@pytest.fixture()
def model_dir(nodes, tmp_path, monkeypatch):
    """An empty face_adapter model folder (and nothing else of Face-Adapter's) for each test."""
    import folder_paths

    from facecontrol.nodes.common import register_model_folders

    register_model_folders()
    for key in ("face_adapter", "insightface"):
        (tmp_path / key).mkdir()
        exts = folder_paths.folder_names_and_paths[key][1]
        monkeypatch.setitem(folder_paths.folder_names_and_paths, key, ([str(tmp_path / key)], exts))
    return tmp_path


def write_release_unet(folder) -> torch.nn.Module:
    """A filled diffusers UNet saved as the release's pretrained_unet/ (config.json + safetensors)."""
    from filled_weights.face_adapter import diffusers_unet

    unet = diffusers_unet()
    unet.save_pretrained(folder / "face_adapter" / "pretrained_unet", safe_serialization=True)
    return unet


def test_auto_takes_the_open_path_without_the_files_and_the_authors_path_with_them(nodes, model_dir):
    from filled_weights import spatial

    face_nodes, spatial_nodes, fan = nodes
    assert face_nodes.detector_backend("auto") == "mediapipe"
    assert spatial_nodes.fit_backend("auto") == "ict_facekit"
    assert spatial_nodes._choose_mask_method("reenactment", "auto") == "geometric"
    assert spatial_nodes._choose_mask_method("swap", "auto") == "geometric"
    _, used = fan.FaceAdapterUNet.execute("the checkpoint MODEL", "auto").args
    assert used == "checkpoint's UNet (pretrained_unet/ not found)"

    spatial.install(model_dir)
    scrfd = model_dir / "face_adapter" / "third_party" / "models" / "antelopev2" / "scrfd_10g_bnkps.onnx"
    scrfd.parent.mkdir(parents=True)
    scrfd.write_bytes(b"")  # resolving is all auto checks; loading is test_scrfd_backend's
    write_release_unet(model_dir)
    assert face_nodes.detector_backend("auto") == "insightface-scrfd"
    assert spatial_nodes.fit_backend("auto") == "bfm_d3dfr"
    assert spatial_nodes._choose_mask_method("reenactment", "auto") == "network"
    assert spatial_nodes._choose_mask_method("swap", "auto") == "network"
    assert spatial_nodes._mask_label("network", "swap") == "network (swap; BiSeNet, 79999_iter.pth, the authors')"
    model, used = fan.FaceAdapterUNet.execute("the checkpoint MODEL", "auto").args
    assert used.startswith("release pretrained_unet")
    assert model != "the checkpoint MODEL"
    assert fan.FaceAdapterUNet.execute("ckpt", "checkpoint's UNet").args == ("ckpt", "checkpoint's UNet (chosen)")

    # Fit 3DMM on a real face names the backend it ran (the filled d3dfr and the synthetic BFM here)
    photo = load_rgb("astronaut.png")
    fit, backend_used = spatial_nodes.Fit3DMM.execute(
        torch.from_numpy(photo)[None].float() / 255, _mediapipe_faces(photo), "auto", "per frame", 0.0, "one warp"
    ).args  # auto would re-detect with the empty SCRFD
    assert backend_used == "bfm_d3dfr" and fit.backend == "bfm_d3dfr"


def _mediapipe_faces(photo: np.ndarray):
    from facecontrol.face.detect_mediapipe import MediaPipeFaceDetector
    from facecontrol.face.select import Selection, detect_face_set

    from face_test_utils import mediapipe_model_path

    return detect_face_set(photo[None], MediaPipeFaceDetector(mediapipe_model_path()), Selection(), track=False)


@torch.no_grad()
def test_release_unet_step_equals_diffusers(nodes, model_dir):
    """One ComfyUI Euler step at CFG 5 with the release UNet (loaded by the node) equals diffusers'."""
    import comfy.samplers

    fan = nodes[2]
    unet = write_release_unet(model_dir).eval()
    model, _ = fan.FaceAdapterUNet.execute(None, "release pretrained_unet").args
    g = torch.Generator().manual_seed(0)
    identity, empty = torch.randn(1, 77, 768, generator=g), torch.randn(1, 77, 768, generator=g)
    noise = torch.randn(1, 4, 32, 32, generator=g)
    sigmas = model.get_model_object("model_sampling").sigmas
    s0, s1 = float(sigmas[T0]), float(sigmas[T1])
    scale = model.get_model_object("latent_format").scale_factor
    got = (
        comfy.samplers.sample(
            model,
            noise,
            [[identity, {}]],
            [[empty, {}]],
            CFG,
            "cpu",
            comfy.samplers.ksampler("euler"),
            torch.tensor([s0, s1]),
            latent_image=torch.zeros_like(noise),
            disable_pbar=True,
        )
        * scale
    )
    x0 = noise * s0
    x_in = x0 / (s0**2 + 1) ** 0.5
    uncond = unet(x_in, T0, encoder_hidden_states=empty).sample
    cond = unet(x_in, T0, encoder_hidden_states=identity).sample
    expected = x0 + (uncond + CFG * (cond - uncond)) * (s1 - s0)

    def eps(x1):
        return (x1 - x0) / (s1 - s0)

    error = float((eps(got) - eps(expected)).norm() / eps(expected).norm())
    assert error < 1e-3
    # the comparison tells UNets apart: another filled UNet's step misses by far more
    from diffusers import UNet2DConditionModel

    from filled_weights.face_adapter import UNET_CONFIG, filled_module

    other = filled_module(UNet2DConditionModel(**UNET_CONFIG), 99)
    other_eps = other(x_in, T0, encoder_hidden_states=empty).sample
    other_eps = other_eps + CFG * (other(x_in, T0, encoder_hidden_states=identity).sample - other_eps)
    assert float((eps(got) - other_eps).norm() / other_eps.norm()) > 100 * error


def test_release_unet_config_mismatch_names_the_field(nodes, model_dir):
    import json

    fan = nodes[2]
    write_release_unet(model_dir)
    config_path = model_dir / "face_adapter" / "pretrained_unet" / "config.json"
    config = json.loads(config_path.read_text())
    config["cross_attention_dim"] = 1024
    config_path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="cross_attention_dim is 1024"):
        fan.FaceAdapterUNet.execute(None, "auto")


@pytest.mark.parametrize(
    "field, value",
    [
        ("controlnet_conditioning_channel_order", "bgr"),
        ("conditioning_embedding_out_channels", [16, 32, 96, 512]),
        ("attention_head_dim", 16),
        ("upcast_attention", True),
        ("global_pool_conditions", True),
        ("down_block_types", ["CrossAttnDownBlock2D", "SimpleCrossAttnDownBlock2D"]),
        ("cross_attention_dim", 1024),
        ("conditioning_channels", 4),
    ],
)
def test_controlnet_config_checks_name_field_and_value(nodes, field, value):
    from diffusers import ControlNetModel

    fan = nodes[2]
    from filled_weights.face_adapter import UNET_CONFIG

    config = dict(
        ControlNetModel(
            **{k: v for k, v in UNET_CONFIG.items() if k not in ("sample_size", "out_channels", "up_block_types")}
        ).config
    )
    fan.check_controlnet_config(config, "controlnet/config.json")  # the filled release passes
    config[field] = value
    with pytest.raises(ValueError, match=f"{field} is {value!r}".replace("[", r"\[").replace("]", r"\]")):
        fan.check_controlnet_config(config, "controlnet/config.json")


def test_authors_largest_key_is_a_named_selection():
    from facecontrol.face.align import faceadapter_pick_face
    from facecontrol.face.select import AUTHORS_LARGEST, Selection, choose_face
    from facecontrol.face.types import Face

    # a big face high in the photo and a smaller one lower down: the authors' key takes the lower one
    boxes = np.array([[100.0, 10.0, 300.0, 210.0], [400.0, 600.0, 500.0, 700.0]])
    faces = [Face(box=b, score=0.9, lm68=None, lm5=np.zeros((5, 2)), backend="test") for b in boxes]
    assert choose_face(faces, Selection("largest"), (800, 800)) is faces[0]
    picked = choose_face(faces, Selection(AUTHORS_LARGEST), (800, 800))
    assert picked is faces[faceadapter_pick_face(boxes)] is faces[1]


def test_bfm_smoothing_smooths_the_canvas(nodes, model_dir, monkeypatch):
    """On bfm_d3dfr, smooth_sigma smooths the per-frame 256 canvas (as on ICT), so the regressor's crops and the
    drawn landmarks follow one smoothed crop."""
    from facecontrol.face import face3dmm as f3

    from filled_weights import spatial
    from media import load_video_rgb

    spatial_nodes = nodes[1]
    spatial.install(model_dir)
    frames = load_video_rgb("carphone_pristine.mp4", 6)
    faces = _video_faces(frames)
    fit = spatial_nodes.fit_bfm_backend(frames, faces, False, 1.5)
    expected = f3.smooth_canvas(f3.arcface_canvas(faces), 1.5)
    np.testing.assert_allclose(fit.canvas, expected, atol=1e-9)
    assert np.abs(fit.canvas - f3.arcface_canvas(faces)).max() > 1e-3


def _video_faces(frames: np.ndarray):
    from facecontrol.face.detect_mediapipe import MediaPipeFaceDetector
    from facecontrol.face.select import Selection, detect_face_set

    from face_test_utils import mediapipe_model_path

    return detect_face_set(frames, MediaPipeFaceDetector(mediapipe_model_path()), Selection(), track=True)


def test_swap_masks_from_a_user_mask_or_a_label_image(nodes):
    """Swapping accepts a user MASK as given, or a label image in the authors' precomputed-mask coding, which
    their class sets (face 1<l<12, with ears 1<l<14, occlusion 14<l<20) and dilations 65 and 5 turn into a mask."""
    import cv2

    from facecontrol.face.face3dmm import CropLandmarks

    spatial_nodes = nodes[1]
    labels = np.zeros((512, 512), np.uint8)
    cv2.circle(labels, (256, 256), 80, 5, -1)  # face
    cv2.circle(labels, (120, 256), 20, 13, -1)  # an ear-like region
    cv2.rectangle(labels, (200, 400), (320, 430), 16, -1)  # an occlusion (their coding)
    png_values = np.round(labels.astype(np.float64) * 255 / 20).clip(0, 255).astype(np.uint8)
    label_image = torch.from_numpy(np.repeat(png_values[None, ..., None], 3, -1)).float() / 255

    def dil(m, k):
        return cv2.dilate(m, np.ones((k, k), np.uint8))

    face = ((labels > 1) & (labels < 12)).astype(np.uint8)
    ears = ((labels > 1) & (labels < 14)).astype(np.uint8)
    occ = ((labels > 14) & (labels < 20)).astype(np.uint8)
    expected = dil(np.maximum(ears, dil(face, 65)) * (1 - occ), 5).astype(np.float32)

    base = torch.zeros(1, 512, 512, 3)
    points = CropLandmarks(np.zeros((1, 70, 2)), 512, "faceadapter512")
    mask, label = spatial_nodes.AdaptingMask.execute("swap", "auto", base, base, points, swap_labels=label_image).args
    assert label.startswith("precomputed labels")
    np.testing.assert_array_equal(mask[0].numpy(), expected)

    user = torch.zeros(1, 512, 512)
    user[0, 100:300, 150:350] = 1.0
    mask, label = spatial_nodes.AdaptingMask.execute("swap", "network", base, base, points, swap_mask=user).args
    assert label.startswith("user mask") and torch.equal(mask, user)
    with pytest.raises(ValueError, match="for mode 'swap'"):
        spatial_nodes.AdaptingMask.execute("reenactment", "auto", base, base, points, swap_mask=user)
    with pytest.raises(ValueError, match="give it in the 512 crop"):
        spatial_nodes.AdaptingMask.execute("swap", "auto", base, base, points, swap_mask=user[:, :256, :256])
