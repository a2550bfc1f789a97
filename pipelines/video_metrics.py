"""Video metrics for DVA: reconstruction (SSIM, MS-SSIM, MSE, LPIPS when available) and temporal identity
consistency (TL-ID, TG-ID as defined by STIT, Tzaban et al. 2022, and used in the DVA paper).

Images are (N,3,H,W) float in [0,1]. SSIM uses an 11-tap Gaussian window (sigma 1.5), K1 0.01, K2 0.03,
valid filtering, averaged over channels and pixels; MS-SSIM uses five scales with the standard weights
(Wang et al. 2003) and 2x2 average pooling between them.

TL-ID = mean_i cos(e_i, e_i+1) / mean_i cos(o_i, o_i+1) and TG-ID = mean_{i<j} cos(e_i, e_j) /
mean_{i<j} cos(o_i, o_j), where e and o are identity embeddings of the edited and original frames: 1 means
the edit kept the video's own identity consistency.
"""
from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["ssim", "ms_ssim", "mse", "tl_id", "tg_id", "identity_consistency", "dlib_identity",
           "dlib_descriptor_file", "irse50_identity", "lpips_distance", "MS_SSIM_WEIGHTS"]

logger = logging.getLogger(__name__)
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
Embedder = Callable[[torch.Tensor], torch.Tensor]


def _gaussian_window(size: int = 11, sigma: float = 1.5, channels: int = 3, like: torch.Tensor | None = None):
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = (g / g.sum()).to(like.dtype if like is not None else torch.float32)
    if like is not None:
        g = g.to(like.device)
    return g.view(1, 1, 1, -1).repeat(channels, 1, 1, 1)


def _blur(x: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    c = x.shape[1]
    x = F.conv2d(x, window, groups=c)
    return F.conv2d(x, window.transpose(2, 3), groups=c)


def _ssim_and_cs(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image SSIM and contrast-structure term (N,)."""
    window = _gaussian_window(channels=x.shape[1], like=x)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_x, mu_y = _blur(x, window), _blur(y, window)
    sxx = _blur(x * x, window) - mu_x**2
    syy = _blur(y * y, window) - mu_y**2
    sxy = _blur(x * y, window) - mu_x * mu_y
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    luminance = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    return (luminance * cs).flatten(1).mean(1), cs.flatten(1).mean(1)


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM (N,) of [0,1] images (N,C,H,W)."""
    return _ssim_and_cs(x.double(), y.double())[0].float()


def ms_ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image MS-SSIM (N,); images must be larger than 160 px on their short side."""
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
    return ((x - y) ** 2).flatten(1).mean(1)


def lpips_distance(x: torch.Tensor, y: torch.Tensor, net: str = "alex") -> torch.Tensor | None:
    """LPIPS (N,) through the `lpips` package when it and its backbone weights are installed; else None.

    The package's linear heads ship with it, but its AlexNet/VGG backbone is fetched by torchvision on
    first use; this pack never downloads at run time, so without a cached backbone LPIPS is reported
    as unavailable instead.
    """
    try:
        import lpips  # noqa: F401
    except ImportError:
        logger.info("LPIPS unavailable: the 'lpips' package is not installed")
        return None
    try:
        model = _lpips_model(net)
    except Exception as error:  # noqa: BLE001 - any failure to build offline means "unavailable"
        logger.info("LPIPS unavailable offline: %s", error)
        return None
    with torch.no_grad():
        return model(x * 2 - 1, y * 2 - 1).flatten()


def _lpips_model(net: str):
    import lpips

    hub = Path(torch.hub.get_dir())
    cached = list((hub / "checkpoints").glob(f"{net}*.pth"))
    if not cached:
        raise FileNotFoundError(f"no cached {net} backbone in {hub}/checkpoints")
    return lpips.LPIPS(net=net, verbose=False).eval()


# ---------------------------------------------------------------- identity consistency


def _mean_adjacent_cosine(emb: torch.Tensor) -> float:
    emb = F.normalize(emb.double(), dim=1)
    return float((emb[1:] * emb[:-1]).sum(1).mean())


def _mean_pairwise_cosine(emb: torch.Tensor) -> float:
    emb = F.normalize(emb.double(), dim=1)
    sims = emb @ emb.T
    i, j = torch.triu_indices(len(emb), len(emb), offset=1)
    return float(sims[i, j].mean())


def tl_id(edited: torch.Tensor, original: torch.Tensor) -> float:
    """Local temporal identity consistency from (N,D) embeddings, N >= 2."""
    return _mean_adjacent_cosine(edited) / _mean_adjacent_cosine(original)


def tg_id(edited: torch.Tensor, original: torch.Tensor) -> float:
    """Global temporal identity consistency from (N,D) embeddings, N >= 2."""
    return _mean_pairwise_cosine(edited) / _mean_pairwise_cosine(original)


def identity_consistency(edited: torch.Tensor, original: torch.Tensor, embed: Embedder) -> dict[str, float]:
    """TL-ID and TG-ID of two (N,3,H,W) [0,1] frame sequences under an identity embedder."""
    if len(edited) != len(original) or len(edited) < 2:
        raise ValueError(f"TL-ID/TG-ID need two videos of equal length >= 2, got {len(edited)} and {len(original)}")
    e, o = embed(edited), embed(original)
    return {"TL-ID": tl_id(e, o), "TG-ID": tg_id(e, o)}


def irse50_identity(encoder, device: torch.device | str = "cpu") -> Embedder:
    """IR-SE50 embeddings (the DVA identity encoder) of 256 FFHQ crops."""

    def embed(frames: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([encoder.id_forward(frames[i:i + 8].to(device) * 2 - 1).cpu() for i in range(0, len(frames), 8)])

    return embed


def dlib_identity(model_path: str) -> Embedder:
    """dlib's ResNet face descriptor (128-d) on each aligned crop resized to its 150 px chip."""
    import cv2
    import dlib

    net = dlib.face_recognition_model_v1(model_path)

    def embed(frames: torch.Tensor) -> torch.Tensor:
        chips = (frames.permute(0, 2, 3, 1).clamp(0, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)
        out = [np.array(net.compute_face_descriptor(np.ascontiguousarray(cv2.resize(c, (150, 150), interpolation=cv2.INTER_AREA))))
               for c in chips]
        return torch.from_numpy(np.stack(out)).float()

    return embed


def dlib_descriptor_file() -> str | None:
    """dlib_face_recognition_resnet_model_v1.dat from the face_recognition_models package, if installed."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / "dlib_face_recognition_resnet_model_v1.dat"
    return str(path) if path.is_file() else None
