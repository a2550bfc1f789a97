"""Golden fixtures: one table-driven test over the fixture folder (FACE_GOLDEN_DIR, see golden_fixtures.py).

CHECKS maps each fixture folder to the function that rebuilds our module at the fixture's config, loads the
filled weights with strict=True, and compares outputs with `fx.check` under the fixture's tolerance rule.
Strict keys: the table and the folder must name the same fixtures (a new fixture without a check, or a check
whose fixture is gone, fails), and every recorded `out.*` tensor must have been compared.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from golden_fixtures import Fixture, fixture_names, golden_dir, load_fixture

pytestmark = pytest.mark.golden


# ---------------------------------------------------------------- Face-Adapter


def _check_fa_id2token(fx: Fixture, tmp: Path) -> None:
    from facecontrol.models.token_mappers import ID2Token

    model = ID2Token(**fx.config).eval()
    model.load_state_dict(fx.filled_state_dict(), strict=True)
    with torch.no_grad():
        fx.check("tokens", model(fx.inputs["in.x"]))


def _check_fa_image2token(fx: Fixture, tmp: Path) -> None:
    from facecontrol.models.token_mappers import Image2Token

    model = Image2Token(**fx.config).eval()
    model.load_state_dict(fx.filled_state_dict(), strict=True)
    with torch.no_grad():
        fx.check("tokens", model(fx.inputs["in.x"]))


def _check_fa_seg_unet(fx: Fixture, tmp: Path) -> None:
    from facecontrol.models.seg_unet import AdaptingAreaPredictor

    model = AdaptingAreaPredictor(**fx.config)
    model.load_state_dict(fx.filled_state_dict(), strict=True)
    model.eval()
    x = fx.inputs["in.x"]
    with torch.no_grad():
        fx.check("prob", model(x))
    mask = model.predict_mask(x[:, :3], x[:, 3:])
    expected = fx.outputs["out.prob"]
    decided = (expected - 0.5).abs() > 1e-4  # pixels at the threshold may flip on rounding
    assert torch.equal(mask[decided], (expected[decided] > 0.5).float())


def _check_fa_d3dfr(fx: Fixture, tmp: Path) -> None:
    from facecontrol.models.d3dfr import D3DFRRegressor, split_coeffs

    model = D3DFRRegressor(**fx.config)
    model.load_state_dict(fx.filled_state_dict(), strict=True)
    model.eval()
    with torch.no_grad():
        coeff = model(fx.inputs["in.x"])
    fx.check("coeff", coeff)
    parts = split_coeffs(coeff)
    assert parts["gaze"].shape[1] == 4 and parts["trans"].shape[1] == 3


def _check_d3dfr_recon(fx: Fixture, tmp: Path) -> None:
    from facecontrol.models.d3dfr import Deep3DFaceReconRegressor, split_coeffs

    model = Deep3DFaceReconRegressor(**fx.config)
    model.load_state_dict(fx.filled_state_dict(), strict=True)
    model.eval()
    with torch.no_grad():
        coeff = model(fx.inputs["in.x"])
    fx.check("coeff", coeff)
    assert "gaze" not in split_coeffs(coeff)


def _check_fa_iresnet100(fx: Fixture, tmp: Path) -> None:
    from facecontrol.models.iresnet import IResNet

    model = IResNet(**fx.config).eval()
    model.load_state_dict(fx.filled_state_dict(), strict=True)
    assert list(model.state_dict().keys()) == list(fx.shapes.keys())
    with torch.no_grad():
        fx.check("tokens", model.tokens(fx.inputs["in.x128"]))
        fx.check("tokens_from_256", model.spatial_tokens(fx.inputs["in.img256"]))
        fx.check("id512", model.embedding(fx.inputs["in.x112"]))


def _check_fa_bfm(fx: Fixture, tmp: Path) -> None:
    from facecontrol.face.bfm import BFMProjector, recombine_identity

    config = dict(fx.config)
    mat_name = config.pop("bfm_model_path").split()[0]
    bfm = BFMProjector(fx.folder / mat_name, **config)
    src, drive = fx.inputs["in.coeff_src"], fx.inputs["in.coeff_drive"]
    fx.check("lm68_src", bfm.get_lm68(src))
    fx.check("lm68_drive", bfm.get_lm68(drive))
    recombined = recombine_identity(src, drive)
    fx.check("coeff_recombined", recombined)
    fx.check("lm68_recombined", bfm.get_lm68(recombined))
    assert torch.equal(drive, fx.inputs["in.coeff_drive"]), "recombination must not modify its inputs"
    # the vertices the projection starts from contain the landmarks
    geometry = bfm.vertices(src)
    assert geometry["vertices_cam"].shape == (src.shape[0], bfm.num_vertices, 3)
    torch.testing.assert_close(bfm.flip_y(geometry["projected"][:, bfm.keypoints]), bfm.get_lm68(src))


def _check_fa_draw_pts70(fx: Fixture, tmp: Path) -> None:
    from facecontrol.face.draw import draw_pts70

    cfg = fx.config
    images, control = draw_pts70(
        fx.inputs["in.lm68"],
        fx.inputs["in.gaze"],
        fx.inputs["in.warp_mat256"],
        dst_size=cfg["dst_size"],
        canvas_size=cfg["canvas"],
        radius=cfg["radius"],
    )
    fx.check("pts70_uint8", torch.from_numpy(images))
    fx.check("control", control)
    assert control.dtype == torch.float32
    assert control.min() >= -1 and control.max() <= 1
    assert (images.reshape(-1, 3).max(axis=0) > 0).all(), "drawing must not be black"


def _check_fa_align(fx: Fixture, tmp: Path) -> None:
    from facecontrol.face import align
    from facecontrol.face.landmarks import FACEADAPTER_BOX_512, FACEADAPTER_TEMPLATE_256
    from facecontrol.face.types import compose_affine

    np.testing.assert_array_equal(FACEADAPTER_BOX_512, np.array(fx.config["mean_box_lm4p_512"], np.float64))
    boxes = fx.inputs["in.bboxes"].numpy()
    sel = align.faceadapter_pick_face(boxes)
    fx.check("selected_index", torch.tensor(sel))

    box = boxes[int(fx.outputs["out.selected_index"])]
    loose = align.faceadapter_box_corners(box, fx.config["crop_ratio"])
    fx.check("bbox_pts4", torch.from_numpy(loose).float())
    fx.check("warp_mat_crop", torch.from_numpy(align.procrustes_similarity(loose, FACEADAPTER_BOX_512)))
    tight = align.faceadapter_box_corners(box, 0.0)
    fx.check("bbox_pts4_tight", torch.from_numpy(tight).float())
    fx.check("warp_mat_crop_tight", torch.from_numpy(align.procrustes_similarity(tight, FACEADAPTER_BOX_512)))

    image = fx.inputs["in.image"].numpy()
    crop512 = align.faceadapter512_crop(boxes[sel : sel + 1], tuple(fx.config["image_hw"]), fx.config["crop_ratio"])
    img512 = align.warp_frames(image[None], crop512.forward, fx.config["crop_size"])[0]
    fx.check("crop512", torch.from_numpy(img512))
    mat256 = align.lstsq_similarity(fx.inputs["in.pts5_512"].numpy(), FACEADAPTER_TEMPLATE_256)
    fx.check("warp_mat256", torch.from_numpy(mat256))
    img256 = align.warp_frames(img512[None], mat256[None], fx.config["align_size"])[0]
    fx.check("crop256", torch.from_numpy(img256))

    # our one-step frame->256 warp (chained affines) matches the authors' two-stage warp closely
    crop256 = align.faceadapter256_from_512(crop512, fx.inputs["in.kps"].numpy()[sel : sel + 1])
    expected = compose_affine(fx.outputs["out.warp_mat256"].numpy(), fx.outputs["out.warp_mat_crop"].numpy())
    np.testing.assert_allclose(crop256.forward[0], expected, rtol=0, atol=1e-3)


# ---------------------------------------------------------------- Diffusion Video Autoencoders


class _CountingModel:
    """Wraps the UNet and records the timesteps it is called with."""

    def __init__(self, model) -> None:
        self.model = model
        self.timesteps: list[int] = []

    def __call__(self, x, t, z_face):
        assert t.dtype == torch.int64
        self.timesteps.append(int(t[0]))
        return self.model(x, t, z_face)


def _check_dva_unet(fx: Fixture, tmp: Path) -> None:
    from facecontrol.models.dva_unet import DVAUNet

    model = DVAUNet.from_config(fx.config).eval()
    model.load_state_dict(fx.filled_state_dict(), strict=True)
    with torch.no_grad():
        fx.check("eps", model(fx.inputs["in.x_t"], fx.inputs["in.t"], fx.inputs["in.z_face"]))


def _check_dva_ddim(fx: Fixture, tmp: Path) -> None:
    from facecontrol.models.dva_unet import DVAUNet
    from facecontrol.pipelines.dva import DDIMSchedule, ddim_generate, ddim_invert, respace_timesteps

    assert fx.config["section_counts"] == f"ddim{fx.config['T']}"
    schedule = DDIMSchedule.from_timesteps(respace_timesteps(fx.config["T"], rule="ddim"))
    fx.check("timestep_map", schedule.timestep_tensor())

    unet = DVAUNet.from_config(fx.config).eval()
    unet.load_state_dict(fx.filled_state_dict(), strict=True)
    model = _CountingModel(unet)
    x0, z_face, clip = fx.inputs["in.x0"], fx.inputs["in.z_face"], fx.config["clip_denoised"]

    x_T = ddim_invert(model, x0, z_face, schedule, clip_denoised=clip)
    assert model.timesteps == list(schedule.timestep_map[:-1])
    fx.check("x_T", x_T)

    model.timesteps.clear()
    recon = (ddim_generate(model, fx.outputs["out.x_T"], z_face, schedule, clip_denoised=clip) + 1) / 2
    assert model.timesteps == list(reversed(schedule.timestep_map))
    fx.check("recon", recon)


def _check_dva_face_code(fx: Fixture, tmp: Path) -> None:
    from facecontrol.models.dva_face_encoder import DVAFaceEncoder

    encoder = DVAFaceEncoder().eval()
    filled = fx.filled_state_dict()
    encoder.load_state_dict(filled, strict=True)
    # aliased landmark keys: the base_net values are the ones in effect
    in_effect = encoder.lndnet.backbone.base_net[0][3].conv[1][0].weight
    assert torch.equal(in_effect, filled["lndnet.backbone.base_net.0.3.conv.1.0.weight"])
    assert not torch.equal(in_effect, filled["lndnet.backbone.pretrain_net.features.3.conv.1.0.weight"])

    img, z_id, z_lnd = fx.inputs["in.img"], fx.inputs["in.z_id_given"], fx.inputs["in.z_lnd_given"]
    with torch.no_grad():
        fx.check("z_id", encoder.id_forward(img))
        fx.check("lnd_raw136", encoder.lndnet.raw(img))
        fx.check("z_lnd", encoder.landmarks(img))
        fx.check("z_face", encoder(img))
        fx.check("z_face_given", encoder.face_code(z_id, z_lnd))
        fx.check("z_face_with_id", encoder.forward_with_id(z_id, img))
        parsing = encoder.bgnet.segment(img)
        fx.check("bisenet_logits_avgpool8", F.avg_pool2d(parsing.logits, 8))
        fx.check("segmentation", parsing.labels.to(torch.uint8))
        fx.check("mask_video", encoder.face_mask(img, for_video=True))
        fx.check("mask_image", encoder.face_mask(img, for_video=False))


def _check_dva_cls_edit(fx: Fixture, tmp: Path) -> None:
    from facecontrol.models.dva_checkpoint import read_dva_classifier
    from facecontrol.pipelines.dva import (
        CELEBA_ATTRIBUTES,
        attribute_direction,
        attribute_index,
        average_identity,
        classifier_edit,
        normalize_identity,
    )

    assert list(CELEBA_ATTRIBUTES) == fx.config["id_to_cls"]
    assert attribute_index(fx.config["attribute"]) == fx.config["cls_id"] == int(fx.inputs["in.cls_id"])
    classifier = read_dva_classifier({"state_dict": fx.filled_state_dict()})
    cls_id, scale = fx.inputs["in.cls_id"], fx.inputs["in.scale"]
    mean, std = classifier.conds_mean, classifier.conds_std

    z_id_rep = average_identity(fx.inputs["in.z_id_frames"])
    fx.check("z_id_rep", z_id_rep)
    z_norm = normalize_identity(z_id_rep, mean, std)
    fx.check("z_norm", z_norm)
    step = float(scale) * 512**0.5
    fx.check("z_norm_edited", z_norm + step * attribute_direction(classifier.weight, cls_id))
    edited = classifier_edit(z_id_rep, classifier.weight, cls_id, scale, mean, std)
    fx.check("z_id_edited", edited)
    assert torch.allclose(edited.norm(dim=1), torch.ones(1))


# ---------------------------------------------------------------- StyleGAN2

ROSINALITY_LR_MUL = 0.01  # rosinality's lr_mlp default, undone for the rescaled-mapping output
NVLABS_LR_MULTIPLIER = 0.01  # MappingNetwork's default, undone for the rescaled-mapping output
NVLABS_PSI = 0.7  # the truncation of the w_psi07 output


@torch.no_grad()
def _check_sg2_rosinality(fx: Fixture, tmp: Path) -> None:
    from facecontrol.models.stylegan2 import Generator

    torch.manual_seed(0)
    generator = Generator(**fx.config).eval()
    generator.load_state_dict(fx.filled_state_dict(), strict=True)
    image, _ = generator([fx.inputs["in.w_plus"]], input_is_latent=True, randomize_noise=False)
    fx.check("image", image)
    fx.check("image", generator.synthesis(fx.inputs["in.w_plus"], noise_mode="const"))
    z = fx.inputs["in.z"]
    fx.check("w", generator.style(z))
    assert generator.mapping(z).shape == (z.shape[0], generator.num_ws, fx.config["style_dim"])
    image, _ = generator([z], randomize_noise=False)
    fx.check("image_from_z", image)

    state = fx.filled_state_dict()
    factor = math.sqrt(fx.config["style_dim"]) / ROSINALITY_LR_MUL
    for i in range(1, fx.config["n_mlp"] + 1):
        state[f"style.{i}.weight"] = state[f"style.{i}.weight"] * factor
    rescaled = Generator(**fx.config).eval()
    rescaled.load_state_dict(state, strict=True)
    fx.check("w_mapping_rescaled", rescaled.style(z))
    _check_rosinality_files(fx, tmp)


def _check_rosinality_files(fx: Fixture, tmp: Path) -> None:
    """load_stylegan2 reads a converted .pt (latent_avg) and a train.py checkpoint (argparse args, w_avg estimated)."""
    from facecontrol.models.stylegan2 import load_stylegan2

    state = fx.filled_state_dict()
    latent_avg = torch.randn(fx.config["style_dim"])
    torch.save({"g_ema": state, "latent_avg": latent_avg}, tmp / "converted.pt")
    model = load_stylegan2(tmp / "converted.pt")
    info = model.load_info
    assert info["format"] == "rosinality" and info["config"] == fx.config and info["w_avg_source"] == "latent_avg"
    assert torch.equal(model.w_avg, latent_avg)
    fx.check("image", model.synthesis(fx.inputs["in.w_plus"], noise_mode="const"))

    torch.save({"g_ema": state, "args": argparse.Namespace(size=fx.config["size"])}, tmp / "000100.pt")
    model = load_stylegan2(tmp / "000100.pt")
    info = model.load_info
    assert info["w_avg_source"] == "estimated" and model.w_avg.shape == (fx.config["style_dim"],)
    assert all(torch.equal(model.state_dict()[key], value) for key, value in state.items())


@torch.no_grad()
def _check_sg2_nvlabs_pkl(fx: Fixture, tmp: Path) -> None:
    from facecontrol.models.stylegan2 import load_stylegan2
    from facecontrol.models.stylegan2_nvlabs import Generator, load_nvlabs_pkl

    generator = load_nvlabs_pkl(fx.folder / fx.config["pickle"])

    info = generator.load_info
    assert info["format"] == "nvlabs"
    assert generator.num_ws == fx.config["num_ws"]
    assert generator.resolution == fx.config["common_kwargs"]["img_resolution"]
    state = generator.state_dict()
    assert list(state) == list(fx.shapes)
    for key, value in fx.filled_state_dict().items():
        assert torch.equal(state[key], value), key

    z = fx.inputs["in.z"]
    fx.check("image", generator.synthesis(fx.inputs["in.ws"], noise_mode="const"))
    fx.check("w", generator.mapping(z))
    fx.check("w_psi07", generator.mapping(z, truncation_psi=NVLABS_PSI))
    fx.check("image_from_z", generator(z, truncation_psi=1, noise_mode="const"))

    kwargs = {k: v for k, v in fx.config["G_kwargs"].items() if k != "class_name"}
    kwargs = {**kwargs, **fx.config["common_kwargs"]}
    rescaled_state = fx.filled_state_dict()
    factor = math.sqrt(kwargs["z_dim"]) / NVLABS_LR_MULTIPLIER
    for idx in range(kwargs["mapping_kwargs"]["num_layers"]):
        rescaled_state[f"mapping.fc{idx}.weight"] = rescaled_state[f"mapping.fc{idx}.weight"] * factor
    rescaled = Generator(**kwargs).eval()
    rescaled.load_state_dict(rescaled_state, strict=True)
    fx.check("w_mapping_rescaled", rescaled.mapping(z))

    dispatched = load_stylegan2(fx.folder / fx.config["pickle"])

    info = dispatched.load_info
    assert isinstance(dispatched, Generator) and info["format"] == "nvlabs"
    fx.check("image", dispatched.synthesis(fx.inputs["in.ws"], noise_mode="const"))


CHECKS: dict[str, Callable[[Fixture, Path], None]] = {
    "d3dfr_recon": _check_d3dfr_recon,
    "dva_cls_edit": _check_dva_cls_edit,
    "dva_ddim": _check_dva_ddim,
    "dva_face_code": _check_dva_face_code,
    "dva_unet": _check_dva_unet,
    "fa_align": _check_fa_align,
    "fa_bfm": _check_fa_bfm,
    "fa_d3dfr": _check_fa_d3dfr,
    "fa_draw_pts70": _check_fa_draw_pts70,
    "fa_id2token": _check_fa_id2token,
    "fa_image2token": _check_fa_image2token,
    "fa_iresnet100": _check_fa_iresnet100,
    "fa_seg_unet": _check_fa_seg_unet,
    "sg2_nvlabs_pkl": _check_sg2_nvlabs_pkl,
    "sg2_rosinality": _check_sg2_rosinality,
}


def test_table_names_every_fixture_folder():
    assert fixture_names() == sorted(CHECKS), f"fixture folders in {golden_dir()} and CHECKS differ"


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_golden_fixture(name: str, tmp_path: Path):
    fx = load_fixture(name)
    CHECKS[name](fx, tmp_path)
    unchecked = sorted(set(fx.outputs) - fx.checked)
    assert not unchecked, f"{name}: recorded outputs never compared: {unchecked}"
