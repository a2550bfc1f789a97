"""The papers' evaluation metrics, as each paper defines them, for nodes and scripts.

Images are (N,3,H,W) float in [0,1] unless a function says otherwise; frames for face networks are (N,H,W,3)
uint8 RGB. Networks are passed in (their files resolved by the caller through model_files / model_names).

Pixel metrics (DVA Table 1, Face-Adapter Table 1):
- ``mse`` and ``psnr`` per image on [0,1] (PSNR = 20 log10(1 / sqrt(MSE)), the authors' metrics.py).
- ``ssim``: 11-tap Gaussian window, sigma 1.5, K1 0.01, K2 0.03, mean over channels and pixels.
  ``padding="valid"`` filters only where the window fits (scikit-image's value); ``padding="zero"`` is the
  authors' (DVA / DiffAE ssim.py) form, zero padding of 5 so the map keeps the image size.
- ``ms_ssim``: five scales, weights of Wang et al. 2003, 2x2 average pooling between scales, valid filtering.
- LPIPS v0.1 AlexNet (models/lpips_alex.py) on [-1,1], as the authors' ``lpips.LPIPS(net='alex')``.
- FID with pytorch-fid's Inception (models/fid_inception.py) and its Frechet distance.

Identity (CSIM, ID retrieval, TL-ID/TG-ID, PIE identity preservation): an ``IdentityNet`` has a name that every
reported number carries, and embeds frames on the crop it was trained on:
- ``DlibChipIdentity``: dlib's ResNet descriptor on dlib's own 150 px chip (HOG detector, dlib's shape predictor,
  ``get_face_chip`` with padding 0.25), the face_recognition package's pipeline;
- ``IRSE50Identity``: IR-SE50 (DVA's identity encoder, PIE's recognition term) on the FFHQ 256 crop as DVA
  feeds it ([35:223, 32:220], pooled to 112);
- ``ArcFaceIdentity``: an insightface iresnet100 (Face-Adapter's glint360k backbone) on the 112 ArcFace crop.

3DMM errors (Face-Adapter Tables 1-2): mean Euclidean distance between D3DFR coefficients of the result and
of the driver: expression (64), pose (the 3 rotation angles, radians) and gaze (4).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .pie.edit import LIGHT_SLIDER_NAMES

__all__ = [
    "ssim",
    "ms_ssim",
    "mse",
    "psnr",
    "lpips",
    "MS_SSIM_WEIGHTS",
    "SSIM_PADDINGS",
    "fid_features",
    "feature_statistics",
    "frechet_distance",
    "fid",
    "IdentityNet",
    "DlibChipIdentity",
    "IRSE50Identity",
    "ArcFaceIdentity",
    "cosine",
    "csim",
    "id_retrieval",
    "tl_id",
    "tg_id",
    "identity_consistency",
    "d3dfr_coefficients",
    "coefficient_errors",
    "COEFFICIENT_ERRORS",
    "edit_errors",
]

logger = logging.getLogger(__name__)
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
SSIM_PADDINGS = ("valid", "zero")
SSIM_WINDOW, SSIM_SIGMA = 11, 1.5
# dlib's detection box in a 256 FFHQ crop (x1, y1, x2, y2 as fractions; mean over 20 carphone crops)
FFHQ_DLIB_BOX = (0.21, 0.29, 0.78, 0.86)


# ---------------------------------------------------------------- pixels


def _gaussian_window(channels: int, like: torch.Tensor) -> torch.Tensor:
    coords = torch.arange(SSIM_WINDOW, dtype=torch.float64) - SSIM_WINDOW // 2
    g = torch.exp(-(coords**2) / (2 * SSIM_SIGMA**2))
    g = (g / g.sum()).to(dtype=like.dtype, device=like.device)
    return g.view(1, 1, 1, -1).repeat(channels, 1, 1, 1)


def _blur(x: torch.Tensor, window: torch.Tensor, padding: str) -> torch.Tensor:
    pad = SSIM_WINDOW // 2 if padding == "zero" else 0
    c = x.shape[1]
    x = F.conv2d(x, window, groups=c, padding=(0, pad))
    return F.conv2d(x, window.transpose(2, 3), groups=c, padding=(pad, 0))


def _ssim_and_cs(x: torch.Tensor, y: torch.Tensor, padding: str = "valid") -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image SSIM and contrast-structure term (N,) of [0,1] images."""
    if padding not in SSIM_PADDINGS:
        raise ValueError(f"SSIM padding {padding!r}: choose one of {SSIM_PADDINGS}")
    if padding == "valid" and min(x.shape[2:]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW} px, got {tuple(x.shape[2:])}")
    window = _gaussian_window(x.shape[1], x)
    c1, c2 = 0.01**2, 0.03**2
    mu_x, mu_y = _blur(x, window, padding), _blur(y, window, padding)
    sxx = _blur(x * x, window, padding) - mu_x**2
    syy = _blur(y * y, window, padding) - mu_y**2
    sxy = _blur(x * y, window, padding) - mu_x * mu_y
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    luminance = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    return (luminance * cs).flatten(1).mean(1), cs.flatten(1).mean(1)


def _check_pair(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"expected two (N,C,H,W) batches of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")


def ssim(x: torch.Tensor, y: torch.Tensor, padding: str = "valid") -> torch.Tensor:
    """Per-image SSIM (N,) of [0,1] images; padding 'valid' (scikit-image) or 'zero' (the DVA authors')."""
    _check_pair(x, y)
    return _ssim_and_cs(x.double(), y.double(), padding)[0].float()


def ms_ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image MS-SSIM (N,); images must be larger than 160 px on their short side."""
    _check_pair(x, y)
    if min(x.shape[2:]) <= 160:
        raise ValueError(f"MS-SSIM needs images larger than 160 px, got {tuple(x.shape[2:])}")
    x, y = x.double(), y.double()
    weights = torch.tensor(MS_SSIM_WEIGHTS, dtype=torch.float64, device=x.device)
    values = []
    for level in range(len(MS_SSIM_WEIGHTS)):
        s, cs = _ssim_and_cs(x, y)
        values.append(torch.relu(s if level == len(MS_SSIM_WEIGHTS) - 1 else cs))
        if level < len(MS_SSIM_WEIGHTS) - 1:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    stacked = torch.stack(values, dim=0)
    return torch.prod(stacked ** weights.view(-1, 1), dim=0).float()


def mse(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    _check_pair(x, y)
    return ((x.double() - y.double()) ** 2).flatten(1).mean(1).float()


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB (N,) on [0,1]; identical images give +inf."""
    return (20 * torch.log10(1.0 / torch.sqrt(mse(x, y).double()))).float()


def lpips(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 8) -> torch.Tensor:
    """Per-image LPIPS (N,) of [0,1] images through an LPIPSAlex (models/lpips_alex.py)."""
    _check_pair(x, y)
    device = next(net.parameters()).device
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            a = x[i : i + batch].to(device).float() * 2 - 1
            b = y[i : i + batch].to(device).float() * 2 - 1
            out.append(net(a, b).cpu())
    return torch.cat(out)


# ---------------------------------------------------------------- FID


def fid_features(
    net: torch.nn.Module, images: torch.Tensor, batch: int = 16, on_batch: Callable[[int], None] | None = None
) -> np.ndarray:
    """(N,2048) float64 Inception features of [0,1] images (N,3,H,W) through a FIDInception."""
    device = next(net.parameters()).device
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            out.append(net(images[i : i + batch].to(device).float()).double().cpu().numpy())
            if on_batch is not None:
                on_batch(i)
    return np.concatenate(out) if out else np.zeros((0, 2048))


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (rows are samples, as pytorch-fid's np.cov(rowvar=False)); needs 2 or more rows."""
    features = np.asarray(features, np.float64)
    if len(features) < 2:
        raise ValueError(f"FID needs at least 2 images per set, got {len(features)}")
    return features.mean(0), np.cov(features, rowvar=False)


def _sqrtm(matrix: np.ndarray) -> np.ndarray:
    from scipy import linalg

    return linalg.sqrtm(matrix)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 sqrt(S1 S2)), with pytorch-fid's eps offset when the product is singular."""
    diff = np.asarray(mu1, np.float64) - np.asarray(mu2, np.float64)
    covmean = _sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        logger.info("FID: singular covariance product; adding %g to the diagonals", eps)
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = _sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"FID: imaginary component {np.max(np.abs(covmean.imag)):.3g} in sqrt(S1 S2)")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def fid(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """FID between two sets of Inception features."""
    return frechet_distance(*feature_statistics(features_a), *feature_statistics(features_b))


# ---------------------------------------------------------------- identity


class IdentityNet(Protocol):
    """A face-recognition network on its own crop. ``boxes`` (N,4) x1,y1,x2,y2, ``lm5``/``lm68`` landmarks
    of the face in each frame, from any detector (each network aligns with what it needs)."""

    name: str

    def embed(
        self,
        frames: np.ndarray,
        boxes: np.ndarray | None = None,
        lm5: np.ndarray | None = None,
        lm68: np.ndarray | None = None,
    ) -> torch.Tensor: ...


class DlibChipIdentity:
    """dlib's face descriptor (128-d) on dlib's own aligned 150 px chip, the face_recognition pipeline.

    Each frame: dlib's HOG detector (``upsample`` times, largest face), else the given box; dlib's shape
    predictor in that rectangle (the 5-point model by default, as face_recognition's ``model='small'``);
    ``dlib.get_face_chip(frame, shape, 150, 0.25)``; the ResNet descriptor of the chip.
    """

    name = "dlib ResNet v1 (dlib's 150 px chip)"

    def __init__(self, descriptor_path: str, predictor_path: str, upsample: int = 1) -> None:
        import dlib

        self._dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(predictor_path))
        self.net = dlib.face_recognition_model_v1(str(descriptor_path))
        self.upsample = upsample
        self.undetected = 0  # frames where dlib's detector found no face

    def rectangle(self, frame: np.ndarray, box: np.ndarray | None, index: int):
        """dlib's largest detection, else ``box``, else where dlib finds faces in FFHQ crops (logged)."""
        found = self.detector(frame, self.upsample)
        if len(found):
            return max(found, key=lambda r: r.width() * r.height())
        self.undetected += 1
        if box is None:
            h, w = frame.shape[:2]
            box = np.array(FFHQ_DLIB_BOX) * np.array([w, h, w, h])
            logger.info("dlib found no face in frame %d: using the FFHQ-crop face box", index)
        x1, y1, x2, y2 = (int(round(float(v))) for v in box[:4])
        return self._dlib.rectangle(x1, y1, x2, y2)

    def chips(self, frames: np.ndarray, boxes: np.ndarray | None = None) -> np.ndarray:
        """(N,150,150,3) uint8 chips."""
        out = []
        for i, frame in enumerate(frames):
            frame = np.ascontiguousarray(frame, dtype=np.uint8)
            shape = self.predictor(frame, self.rectangle(frame, None if boxes is None else boxes[i], i))
            out.append(np.asarray(self._dlib.get_face_chip(frame, shape, size=150, padding=0.25)))
        return np.stack(out)

    def embed(
        self,
        frames: np.ndarray,
        boxes: np.ndarray | None = None,
        lm5: np.ndarray | None = None,
        lm68: np.ndarray | None = None,
    ) -> torch.Tensor:
        chips = self.chips(frames, boxes)
        vectors = [np.asarray(self.net.compute_face_descriptor(np.ascontiguousarray(c))) for c in chips]
        return torch.from_numpy(np.stack(vectors)).float()


def _ffhq_crops(frames: np.ndarray, lm68: np.ndarray | None) -> np.ndarray:
    """256 FFHQ crops of frames given their 68 points; frames that are already 256 crops when lm68 is None."""
    from ..face.align import ffhq_crop, warp_frames

    if lm68 is None:
        if frames.shape[1:3] != (256, 256):
            raise ValueError(f"IR-SE50 needs 256 FFHQ crops or 68 landmarks, got frames of {frames.shape[1:3]}")
        return frames
    crop = ffhq_crop(lm68, frames.shape[1:3], 256)
    return warp_frames(frames, crop.forward, 256)


def _embed_batches(net: torch.nn.Module, x: torch.Tensor, batch: int = 8) -> torch.Tensor:
    device = next(net.parameters()).device
    with torch.no_grad():
        return torch.cat([net(x[i : i + batch].to(device)).float().cpu() for i in range(0, len(x), batch)])


class IRSE50Identity:
    """IR-SE50 (``models.dva_face_encoder.IdentityNet``) on FFHQ 256 crops, as DVA computes z_id."""

    name = "IR-SE50 ArcFace (DVA's identity encoder, FFHQ crop)"

    def __init__(self, identity_net: torch.nn.Module) -> None:
        self.net = identity_net

    def embed(
        self,
        frames: np.ndarray,
        boxes: np.ndarray | None = None,
        lm5: np.ndarray | None = None,
        lm68: np.ndarray | None = None,
    ) -> torch.Tensor:
        from ..face.image import uint8_to_signed

        return _embed_batches(self.net, uint8_to_signed(_ffhq_crops(frames, lm68)))


class ArcFaceIdentity:
    """An insightface iresnet (``models.iresnet.IResNet``) embedding of the 112 ArcFace-template crop."""

    def __init__(self, iresnet: torch.nn.Module, name: str = "ArcFace iresnet100 (glint360k)") -> None:
        self.net = iresnet
        self.name = name

    def embed(
        self,
        frames: np.ndarray,
        boxes: np.ndarray | None = None,
        lm5: np.ndarray | None = None,
        lm68: np.ndarray | None = None,
    ) -> torch.Tensor:
        from ..face.align import arcface_crop, warp_frames
        from ..face.image import uint8_to_signed

        if lm5 is None:
            raise ValueError("the ArcFace identity needs the five face points of every frame")
        crops = warp_frames(frames, arcface_crop(lm5, frames.shape[1:3], 112).forward, 112)
        x = uint8_to_signed(crops)
        device = next(self.net.parameters()).device
        with torch.no_grad():
            return torch.cat([self.net.embedding(x[i : i + 8].to(device)).float().cpu() for i in range(0, len(x), 8)])


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise cosine similarity (N,) of (N,D) embeddings."""
    return (F.normalize(a.double(), dim=1) * F.normalize(b.double(), dim=1)).sum(1).float()


def csim(result: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """CSIM (N,): cosine similarity between identity embeddings of results and their sources."""
    return cosine(result, source)


def id_retrieval(
    queries: torch.Tensor, query_labels: Sequence, gallery: torch.Tensor, gallery_labels: Sequence
) -> float:
    """Top-1 identity retrieval accuracy in percent: each query's nearest gallery face (cosine) must carry the
    query's label (the swap's source identity), as FaceShifter's FaceForensics++ protocol."""
    if len(queries) != len(query_labels) or len(gallery) != len(gallery_labels) or not len(gallery):
        raise ValueError("ID retrieval needs one label per query and per gallery face, and a gallery")
    sims = F.normalize(queries.double(), dim=1) @ F.normalize(gallery.double(), dim=1).T
    nearest = sims.argmax(1).tolist()
    hits = [gallery_labels[j] == label for j, label in zip(nearest, query_labels)]
    return 100.0 * sum(hits) / max(1, len(hits))


def _mean_adjacent_cosine(emb: torch.Tensor) -> float:
    emb = F.normalize(emb.double(), dim=1)
    return float((emb[1:] * emb[:-1]).sum(1).mean())


def _mean_pairwise_cosine(emb: torch.Tensor) -> float:
    emb = F.normalize(emb.double(), dim=1)
    sims = emb @ emb.T
    i, j = torch.triu_indices(len(emb), len(emb), offset=1)
    return float(sims[i, j].mean())


def tl_id(edited: torch.Tensor, original: torch.Tensor) -> float:
    """Local temporal identity consistency (STIT): mean adjacent-frame cosine, edited over original."""
    return _mean_adjacent_cosine(edited) / _mean_adjacent_cosine(original)


def tg_id(edited: torch.Tensor, original: torch.Tensor) -> float:
    """Global temporal identity consistency (STIT): mean all-pairs cosine, edited over original."""
    return _mean_pairwise_cosine(edited) / _mean_pairwise_cosine(original)


def identity_consistency(
    edited: np.ndarray, original: np.ndarray, net: IdentityNet, boxes: np.ndarray | None = None
) -> dict[str, float]:
    """TL-ID and TG-ID of two equally long (N,H,W,3) uint8 crop sequences under ``net``.

    ``boxes``: fallback face boxes per frame (for dlib, where its detector finds no face)."""
    if len(edited) != len(original) or len(edited) < 2:
        raise ValueError(f"TL-ID/TG-ID need two videos of equal length >= 2, got {len(edited)} and {len(original)}")
    e, o = net.embed(edited, boxes), net.embed(original, boxes)
    return {"TL-ID": tl_id(e, o), "TG-ID": tg_id(e, o)}


# ---------------------------------------------------------------- 3DMM coefficients (Face-Adapter)

# name -> (coefficient group of models.d3dfr.COEFF_LAYOUT, what the paper calls it)
COEFFICIENT_ERRORS = {"Exp": "exp", "Pose": "angle", "Gaze": "gaze"}


def d3dfr_coefficients(regressor: torch.nn.Module, frames: np.ndarray, lm5: np.ndarray) -> torch.Tensor:
    """(N,261) D3DFR coefficients of each frame's face on Face-Adapter's 256 ArcFace-template crop in [-1,1]."""
    from ..face.align import arcface_crop, warp_frames
    from ..face.image import uint8_to_signed

    crops = warp_frames(frames, arcface_crop(lm5, frames.shape[1:3], 256).forward, 256)
    return _embed_batches(regressor, uint8_to_signed(crops))


def coefficient_errors(result: torch.Tensor, driver: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-pair Euclidean distances (N,) of expression (64), pose angles (3, rad) and gaze (4) coefficients."""
    from ..models.d3dfr import split_coeffs

    a, b = split_coeffs(result.double()), split_coeffs(driver.double())
    missing = [group for group in COEFFICIENT_ERRORS.values() if group not in a or group not in b]
    if missing:
        raise ValueError(f"coefficients lack {missing}: Exp/Pose/Gaze need the 261 outputs of Face-Adapter's D3DFR")
    return {name: torch.linalg.vector_norm(a[g] - b[g], dim=1).float() for name, g in COEFFICIENT_ERRORS.items()}


# ---------------------------------------------------------------- PIE edit accuracy


@dataclass
class EditError:
    """One edited quantity: requested change, measured change, absolute error."""

    name: str
    requested: float
    measured: float

    @property
    def error(self) -> float:
        return abs(self.measured - self.requested)


def edit_errors(requested: dict[str, float], before: dict[str, float], after: dict[str, float]) -> list[EditError]:
    """Requested change of each named quantity against ``after - before`` measured on the reconstruction
    and the edited image by a network the edit did not optimise; quantities measured but not requested
    count as a requested change of 0 (they should stay)."""
    out = []
    for name in sorted(set(before) & set(after)):
        measured = float(after[name]) - float(before[name])
        if not math.isfinite(measured):
            raise ValueError(f"the measured {name} is not finite")
        out.append(EditError(name, float(requested.get(name, 0.0)), measured))
    return out


# the quantities PIE's edit sliders request (pose in degrees, expression weights, SH light offsets)
PIE_POSE = ("yaw", "pitch", "roll")
PIE_LIGHT = LIGHT_SLIDER_NAMES


def _in_plane_angles(canvas: np.ndarray) -> torch.Tensor:
    """(B,) rotation of each frame -> canvas similarity, radians (image y down: positive turns content clockwise)."""
    canvas = np.asarray(canvas, np.float64)
    return torch.from_numpy(np.arctan2(canvas[:, 1, 0], canvas[:, 0, 0]))


def frame_pose_degrees(angles_canvas: torch.Tensor, canvas: np.ndarray) -> np.ndarray:
    """(B,3) yaw, pitch, roll in degrees in the frame, from (yaw, pitch, roll) radians measured in the aligned
    canvas: the canvas's in-plane rotation, which aligning a face removes, is composed back into the roll."""
    from ..face.geometry import matrix_to_angles, rotation_matrix

    delta = _in_plane_angles(canvas).to(torch.float64)
    zero = torch.zeros_like(delta)
    undo = rotation_matrix(torch.stack([zero, zero, delta], -1))
    angles = matrix_to_angles(undo @ rotation_matrix(angles_canvas.double()))
    return np.degrees(angles.numpy())


def ict_measurements(faces, ict_model) -> list[dict[str, float]]:
    """Pose (degrees) and PIE's expression sliders measured by fitting the open ICT-FaceKit model to the
    detector's 68 points (a FaceSet from mediapipe): yaw, pitch, roll and the mean ICT weight of each slider."""
    from ..face.face3dmm import fit_ict
    from .pie import EXPRESSION_SLIDERS

    fit = fit_ict(faces, ict_model, shared_identity=False)
    pose = frame_pose_degrees(fit.coeffs["angles"], fit.canvas)
    names = list(ict_model.exp_names)
    expression = fit.coeffs["expression"].detach().double()
    out = []
    for i in range(len(fit)):
        row = dict(zip(PIE_POSE, (float(v) for v in pose[i])))
        for slider, shapes in EXPRESSION_SLIDERS.items():
            row[slider] = float(expression[i, [names.index(s) for s in shapes if s in names]].mean())
        out.append(row)
    return out


def d3dfr_measurements(coeffs: torch.Tensor, canvas: np.ndarray) -> list[dict[str, float]]:
    """Pose (degrees, frame) and PIE's light sliders from D3DFR / Deep3DFaceRecon coefficients of the 256
    ArcFace-template crops ``canvas``: the SH offsets as PIE's sliders set them (band 0 intensity; band 1 in
    the y, z, x order: from_top = -c1, from_front = c2, from_right = -c3), averaged over colour channels."""
    from ..models.d3dfr import split_coeffs

    parts = split_coeffs(coeffs.double())
    pose = frame_pose_degrees(parts["angle"][:, [1, 0, 2]], canvas)
    sh = parts["gamma"].view(-1, 3, 9).mean(1)
    light = torch.stack([sh[:, 0], -sh[:, 1], -sh[:, 3], sh[:, 2]], -1).numpy()
    return [
        {**dict(zip(PIE_POSE, map(float, pose[i]))), **dict(zip(PIE_LIGHT, map(float, light[i])))}
        for i in range(len(pose))
    ]


# ---------------------------------------------------------------- networks from the model folders

Resolver = Callable[[str], "object"]  # manifest name -> path (model_files.resolve with folders, or the node's)
IDENTITY_NETS = ("dlib", "ir_se50", "arcface_r100")


def load_lpips_net(resolve: Resolver) -> torch.nn.Module:
    """LPIPS AlexNet from the lpips package's weights/v0.1/alex.pth and torchvision's AlexNet file."""
    from .. import model_names as names
    from ..models.lpips_alex import load_lpips_alex

    return load_lpips_alex(resolve(names.METRIC_LPIPS_ALEX), resolve(names.METRIC_ALEXNET))


def load_fid_net(resolve: Resolver) -> torch.nn.Module:
    from .. import model_names as names
    from ..models.fid_inception import load_fid_inception

    return load_fid_inception(resolve(names.METRIC_FID_INCEPTION))


def load_identity_net(kind: str, resolve: Resolver) -> IdentityNet:
    """``dlib`` (dlib's chip and descriptor), ``ir_se50`` (DVA's model_ir_se50.pth) or ``arcface_r100``
    (Face-Adapter's insightface_glint360k.pth)."""
    from .. import model_names as names
    from ..models.checkpoint import load_state_strict, read_state, strip_prefix

    if kind == "dlib":
        return DlibChipIdentity(str(resolve(names.METRIC_DLIB_DESCRIPTOR)), str(resolve(names.METRIC_DLIB_PREDICTOR5)))
    if kind == "ir_se50":
        from ..models.dva_face_encoder import IdentityNet as DVAIdentityNet

        path = resolve(names.DVA_IDNET)
        net = DVAIdentityNet()
        load_state_strict(net.backbone, strip_prefix(read_state(path)), str(path))
        return IRSE50Identity(net.eval())
    if kind == "arcface_r100":
        from ..models.iresnet import load_iresnet100

        return ArcFaceIdentity(load_iresnet100(resolve(names.FA_IRESNET)))
    raise ValueError(f"identity network {kind!r}: choose one of {IDENTITY_NETS}")


def load_face_adapter_d3dfr(resolve: Resolver) -> torch.nn.Module:
    """Face-Adapter's D3DFR (d3dfr_res50_nofc.pth, 261 outputs with gaze): the paper's Exp/Pose/Gaze network."""
    from .. import model_names as names
    from ..models.d3dfr import load_d3dfr

    return load_d3dfr(resolve(names.FA_D3DFR))
