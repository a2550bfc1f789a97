"""The papers' metrics on known values, each checked against another implementation or a known answer.

Pixel metrics against scikit-image and transcriptions of their formulas; LPIPS and FID against the `lpips`
and `pytorch-fid` packages themselves, with filled weights written in those packages' file layouts;
dlib's chip identity against face_recognition's pipeline on the real media; 3DMM errors on a known rotation.
"""

from __future__ import annotations

import importlib
import math
import sys
import types

import cv2
import numpy as np
import pytest
import torch
from scipy import ndimage

from facecontrol import model_files
from facecontrol import model_names as names
from facecontrol.pipelines import metrics as m

from media import load_rgb, load_video_rgb


def unit(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].double() / 255


def resolve(name: str):
    return model_files.resolve(name, {})


@pytest.fixture(scope="module")
def astronaut256() -> np.ndarray:
    return cv2.resize(load_rgb("astronaut.png"), (256, 256), interpolation=cv2.INTER_AREA)


# ---------------------------------------------------------------- SSIM, MS-SSIM, MSE, PSNR


def gaussian_1d() -> np.ndarray:
    g = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    return g / g.sum()


def ssim_formula(a: np.ndarray, b: np.ndarray, zero_padded: bool) -> tuple[float, float]:
    """SSIM and mean cs of (H,W,C) float images from Wang et al.'s formula, written with scipy.ndimage."""
    g = gaussian_1d()

    def blur(x):
        out = ndimage.correlate1d(x, g, axis=0, mode="constant", cval=0.0)
        out = ndimage.correlate1d(out, g, axis=1, mode="constant", cval=0.0)
        return out if zero_padded else out[5:-5, 5:-5]

    c1, c2 = 0.01**2, 0.03**2
    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b, cov = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2, blur(a * b) - mu_a * mu_b
    cs = (2 * cov + c2) / (var_a + var_b + c2)
    s = (2 * mu_a * mu_b + c1) / (mu_a**2 + mu_b**2 + c1) * cs
    return float(s.mean()), float(cs.mean())


def degraded_pairs(image: np.ndarray) -> list[np.ndarray]:
    a = image.astype(np.float64) / 255
    rng = np.random.default_rng(3)
    blurred = cv2.GaussianBlur(a, (0, 0), 2.0)
    shifted = np.roll(a, 3, axis=1)
    noisy = np.clip(a + rng.normal(0, 0.08, a.shape), 0, 1)
    return [blurred, shifted, noisy]


def test_ssim_valid_equals_scikit_image_and_both_forms_equal_their_formulas(astronaut256):
    from skimage.metrics import structural_similarity

    a = astronaut256.astype(np.float64) / 255
    for b in degraded_pairs(astronaut256):
        x, y = torch.from_numpy(a).permute(2, 0, 1)[None], torch.from_numpy(b).permute(2, 0, 1)[None]
        valid, zero = float(m.ssim(x, y, "valid")), float(m.ssim(x, y, "zero"))
        sk = structural_similarity(
            a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0, channel_axis=2
        )
        assert valid == pytest.approx(sk, abs=1e-6)
        assert valid == pytest.approx(ssim_formula(a, b, False)[0], abs=1e-6)
        assert zero == pytest.approx(ssim_formula(a, b, True)[0], abs=1e-6)
        # the audit measured the zero-padded (authors') form 0.009-0.023 above the valid one
        assert 0.0 < zero - valid < 0.05


def test_ssim_known_values(astronaut256):
    x = unit(astronaut256)
    assert float(m.ssim(x, x)) == pytest.approx(1.0, abs=1e-7)
    assert float(m.ssim(x, x, "zero")) == pytest.approx(1.0, abs=1e-7)
    values = [float(m.ssim(x, unit(cv2.GaussianBlur(astronaut256, (0, 0), s)))) for s in (0.5, 1.0, 2.0, 4.0)]
    assert values == sorted(values, reverse=True) and values[-1] < 0.6
    with pytest.raises(ValueError, match="padding"):
        m.ssim(x, x, "reflect")


def ms_ssim_formula(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM (Wang et al. 2003) of (H,W,C) images: cs at scales 1-4, SSIM at scale 5, 2x2 means between."""
    value = 1.0
    for level, weight in enumerate(m.MS_SSIM_WEIGHTS):
        s, cs = ssim_formula(a, b, False)
        value *= max(s if level == 4 else cs, 0.0) ** weight
        h, w = (a.shape[0] // 2) * 2, (a.shape[1] // 2) * 2
        a = a[:h, :w].reshape(h // 2, 2, w // 2, 2, -1).mean((1, 3))
        b = b[:h, :w].reshape(h // 2, 2, w // 2, 2, -1).mean((1, 3))
    return value


def test_ms_ssim_equals_its_formula(astronaut256):
    a = astronaut256.astype(np.float64) / 255
    x = torch.from_numpy(a).permute(2, 0, 1)[None]
    assert float(m.ms_ssim(x, x)) == pytest.approx(1.0, abs=1e-6)
    for b in degraded_pairs(astronaut256):
        y = torch.from_numpy(b).permute(2, 0, 1)[None]
        assert float(m.ms_ssim(x, y)) == pytest.approx(ms_ssim_formula(a, b), abs=1e-6)


def test_mse_and_psnr_on_a_known_offset(astronaut256):
    x = torch.full((2, 3, 32, 32), 0.4, dtype=torch.float64)
    x[1] = unit(astronaut256)[0, :, :32, :32] * 0.5
    y = x + 0.1
    assert m.mse(x, y).tolist() == pytest.approx([0.01, 0.01], abs=1e-7)
    assert m.psnr(x, y).tolist() == pytest.approx([20.0, 20.0], abs=1e-4)
    assert math.isinf(float(m.psnr(x, x)[0]))
    with pytest.raises(ValueError, match="one shape"):
        m.mse(x, y[:, :, :16])


# ---------------------------------------------------------------- LPIPS and FID against their packages


@pytest.fixture(scope="module")
def filled_metric_files(tmp_path_factory):
    from filled_weights import metrics as weights

    root = tmp_path_factory.mktemp("metric_models")
    weights.install(root)
    return root / "metrics"


def test_lpips_equals_the_lpips_package(filled_metric_files, astronaut256):
    import lpips as lpips_package
    import torchvision

    from facecontrol.models.lpips_alex import load_lpips_alex

    heads, backbone = (
        filled_metric_files / "lpips/weights/v0.1/alex.pth",
        filled_metric_files / "torchvision/alexnet-owt-7be5be79.pth",
    )
    ours = load_lpips_alex(heads, backbone)
    theirs = lpips_package.LPIPS(net="alex", pnet_rand=True, model_path=str(heads), verbose=False).eval()
    alexnet = torchvision.models.alexnet(weights=None)
    alexnet.load_state_dict(torch.load(backbone, weights_only=True))
    for index in range(1, 6):  # the package's slices hold torchvision's feature layers by index
        for layer_index, layer in getattr(theirs.net, f"slice{index}").named_children():
            layer.load_state_dict(alexnet.features[int(layer_index)].state_dict())
    x = unit(astronaut256).float().repeat(3, 1, 1, 1)
    y = torch.cat(
        [
            x[:1],
            unit(cv2.GaussianBlur(astronaut256, (0, 0), 1.5)).float(),
            unit(np.roll(astronaut256, 4, axis=1)).float(),
        ]
    )
    ours_values = m.lpips(ours, x, y)
    with torch.no_grad():
        theirs_values = theirs(x * 2 - 1, y * 2 - 1).flatten()
    assert torch.allclose(ours_values, theirs_values, rtol=1e-5, atol=1e-7)
    assert ours_values[0] == 0 and ours_values[1] > 0 and ours_values[2] > 0


def test_lpips_real_heads_load_from_the_package_copy():
    from facecontrol.models.checkpoint import read_state_dict
    from facecontrol.models.lpips_alex import LPIPSAlex

    path = resolve(names.METRIC_LPIPS_ALEX)
    assert model_files.verify_sha256(path, model_files.get_entry(names.METRIC_LPIPS_ALEX).sha256)
    state = read_state_dict(path)
    expected = {k: tuple(v.shape) for k, v in LPIPSAlex().state_dict().items() if k.startswith("lin")}
    assert {k: tuple(v.shape) for k, v in state.items()} == expected


def test_fid_inception_equals_pytorch_fid(filled_metric_files, astronaut256, monkeypatch, tmp_path):
    from pytorch_fid.inception import InceptionV3

    from facecontrol.models.fid_inception import load_fid_inception

    path = filled_metric_files / "pytorch_fid/pt_inception-2015-12-05-6726825d.pth"
    # pytorch-fid reads its weights from torch hub's cache folder when the file is there
    hub = tmp_path / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / path.name).symlink_to(path)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    theirs = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()
    ours = load_fid_inception(path)
    images = torch.cat(
        [unit(astronaut256), unit(astronaut256).flip(-1), unit(cv2.resize(load_rgb("t1.jpg"), (200, 150)))][:2]
    ).float()
    with torch.no_grad():
        reference = theirs(images)[0].flatten(1).double().numpy()
    assert np.allclose(m.fid_features(ours, images), reference, rtol=1e-5, atol=1e-6)


def test_frechet_distance_equals_pytorch_fid_and_known_values():
    from pytorch_fid.fid_score import calculate_frechet_distance

    rng = np.random.default_rng(0)
    a = rng.normal(size=(40, 8))
    b = rng.normal(size=(50, 8)) @ rng.normal(size=(8, 8)) * 0.5 + 1.0
    mu1, s1 = m.feature_statistics(a)
    mu2, s2 = m.feature_statistics(b)
    assert m.fid(a, b) == pytest.approx(calculate_frechet_distance(mu1, s1, mu2, s2), rel=1e-9)
    assert m.fid(a, a) == pytest.approx(0.0, abs=1e-8)
    shift = np.array([3.0, 4.0] + [0.0] * 6)
    assert m.fid(a, a + shift) == pytest.approx(25.0, abs=1e-8)  # same covariance: the squared mean shift
    with pytest.raises(ValueError, match="at least 2"):
        m.feature_statistics(a[:1])


# ---------------------------------------------------------------- identity


def face_recognition_module():
    """The face_recognition package, whose face_recognition_models imports pkg_resources (gone from setuptools
    81+); only that path helper is supplied when it is missing."""
    if importlib.util.find_spec("face_recognition") is None:
        pytest.skip("the face_recognition package is not installed (pip install --no-deps face_recognition)")
    if importlib.util.find_spec("pkg_resources") is not None:
        return importlib.import_module("face_recognition")
    from pathlib import Path

    shim = types.ModuleType("pkg_resources")
    shim.resource_filename = lambda package, rel: str(
        Path(importlib.util.find_spec(package).submodule_search_locations[0]) / rel
    )
    sys.modules["pkg_resources"] = shim
    try:  # face_recognition_models binds resource_filename at import; the shim must not outlive that
        return importlib.import_module("face_recognition")
    finally:
        del sys.modules["pkg_resources"]


def face_recognition_transcribed(rgb: np.ndarray) -> list[np.ndarray]:
    """face_recognition.face_encodings(rgb) in dlib's own calls (face_recognition/api.py): the HOG detector
    upsampled once, the 5-point predictor, compute_face_descriptor on the whole image with that shape."""
    import dlib

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(resolve(names.METRIC_DLIB_PREDICTOR5)))
    net = dlib.face_recognition_model_v1(str(resolve(names.METRIC_DLIB_DESCRIPTOR)))
    return [np.array(net.compute_face_descriptor(rgb, predictor(rgb, r), 1)) for r in detector(rgb, 1)]


@pytest.fixture(scope="module")
def dlib_net() -> m.DlibChipIdentity:
    return m.load_identity_net("dlib", resolve)


def t1_faces() -> list[np.ndarray]:
    """Each of t1.jpg's six faces alone in a square cut around dlib's detection."""
    import dlib

    image = load_rgb("t1.jpg")
    cuts = []
    for r in dlib.get_frontal_face_detector()(image, 1):
        cx, cy, half = (r.left() + r.right()) // 2, (r.top() + r.bottom()) // 2, r.width()
        y0, x0 = max(0, cy - half), max(0, cx - half)
        cuts.append(np.ascontiguousarray(image[y0 : cy + half, x0 : cx + half]))
    return cuts


def test_dlib_chip_identity_equals_face_recognition_on_real_media(dlib_net):
    images = [load_rgb("astronaut.png"), *load_video_rgb(max_frames=3), *t1_faces()]
    assert len(images) == 1 + 3 + 6
    ours = dlib_net.embed(np.stack([cv2.resize(i, (256, 256)) for i in images])).numpy()
    reference = [face_recognition_transcribed(np.ascontiguousarray(cv2.resize(i, (256, 256))))[0] for i in images]
    assert np.abs(ours - np.stack(reference)).max() < 1e-3
    assert dlib_net.undetected == 0


def test_dlib_chip_identity_equals_the_face_recognition_package(dlib_net):
    face_recognition = face_recognition_module()
    frames = load_video_rgb(max_frames=2)
    ours = dlib_net.embed(frames).numpy()
    theirs = np.stack([face_recognition.face_encodings(f)[0] for f in frames])
    assert np.abs(ours - theirs).max() < 1e-3


def test_dlib_chip_identity_tells_two_people_apart(dlib_net):
    carphone = dlib_net.embed(load_video_rgb(max_frames=30)[::10])
    astronaut = dlib_net.embed(load_rgb("astronaut.png")[None])
    same = torch.cdist(carphone, carphone).max()
    different = torch.cdist(astronaut, carphone)
    assert same < 0.6 < different.min()  # dlib's same-person threshold
    assert different.min() - same > 0.2


def test_identity_consistency_of_real_ffhq_crops(dlib_net, detector):
    from facecontrol.face.align import ffhq_crop, warp_frames
    from facecontrol.face.select import Selection, detect_face_set

    frames = load_video_rgb(max_frames=8)
    faces = detect_face_set(frames, detector, Selection())
    crops = warp_frames(frames, ffhq_crop(faces.lm68(), faces.image_size, 256, smooth=True).forward, 256)
    assert m.identity_consistency(crops, crops, dlib_net) == {"TL-ID": pytest.approx(1.0), "TG-ID": pytest.approx(1.0)}
    other = np.stack([cv2.resize(f, (256, 256)) for f in t1_faces()[:2]] * 4)
    scores = m.identity_consistency(other, crops, dlib_net)
    assert scores["TL-ID"] < 0.98 and scores["TG-ID"] < 0.98


def test_cosine_csim_and_id_retrieval_known_values():
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    b = torch.tensor([[2.0, 0.0], [1.0, 0.0], [-1.0, -1.0]])
    assert m.csim(a, b).tolist() == pytest.approx([1.0, 0.0, -1.0], abs=1e-6)
    gallery = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    labels = ["A", "B", "C"]
    queries = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.1, 0.9], [-1.0, 0.2]])
    assert m.id_retrieval(queries, ["A", "B", "A", "C"], gallery, labels) == pytest.approx(75.0)


# ---------------------------------------------------------------- 3DMM coefficients


def test_coefficient_errors_on_a_known_rotation_and_expression():
    from facecontrol.models.d3dfr import COEFF_LAYOUT

    driver = torch.randn(4, 261, generator=torch.Generator().manual_seed(0)) * 0.3
    result = driver.clone()
    start = COEFF_LAYOUT["angle"][0]
    result[:, start : start + 3] += torch.tensor([0.03, -0.04, 0.0])  # a 0.05 rad rotation of the pose
    exp = slice(*COEFF_LAYOUT["exp"])
    result[:, exp] += 0.5 / math.sqrt(64)  # every expression coefficient: distance 0.5
    errors = m.coefficient_errors(result, driver)
    assert errors["Pose"].tolist() == pytest.approx([0.05] * 4, abs=1e-6)
    assert errors["Exp"].tolist() == pytest.approx([0.5] * 4, abs=1e-6)
    assert errors["Gaze"].tolist() == pytest.approx([0.0] * 4, abs=1e-7)
    with pytest.raises(ValueError, match="261"):
        m.coefficient_errors(result[:, :257], driver[:, :257])


def test_pie_pose_measurement_sees_a_known_in_plane_rotation(detector):
    """Rotating the real photo by +10 degrees (counter-clockwise on screen) is a +10 degree roll, measured
    by the ICT fit to mediapipe's points in the frame, with yaw and pitch unchanged."""
    from facecontrol.face.ict_model import load_ict_model
    from facecontrol.face.select import Selection, detect_face_set

    image = load_rgb("astronaut.png")
    h, w = image.shape[:2]
    turned = cv2.warpAffine(image, cv2.getRotationMatrix2D((w / 2, h / 2), 10.0, 1.0), (w, h))
    faces = detect_face_set(np.stack([image, turned]), detector, Selection(), track=False)
    model = load_ict_model(resolve(names.ICT_LANDMARK_MODEL))
    before, after = m.ict_measurements(faces, model)
    errors = {e.name: e for e in m.edit_errors({"roll": 10.0}, before, after)}
    assert errors["roll"].measured == pytest.approx(10.0, abs=1.0)
    assert errors["yaw"].error < 1.5 and errors["pitch"].error < 1.5
    assert abs(errors["smile"].measured) < 0.05


def test_edit_errors_known_values():
    errors = {e.name: e for e in m.edit_errors({"yaw": 15.0}, {"yaw": 2.0, "pitch": 1.0}, {"yaw": 14.0, "pitch": 3.0})}
    assert errors["yaw"].measured == 12.0 and errors["yaw"].error == 3.0
    assert errors["pitch"].requested == 0.0 and errors["pitch"].error == 2.0
