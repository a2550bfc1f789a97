"""Spatial Condition Generator weights in Face-Adapter's released layout (face_adapter/...), filled by the
golden fill rule: the d3dfr regressor (``module.``-prefixed, as DataParallel saves it), the adapting-area
UNet, BiSeNet, and the golden fixture's synthetic BFM_model_front.mat."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from golden_fixtures import _fill_module, golden_dir


def filled_state(module: torch.nn.Module, seed: int = 0, prefix: str = "") -> dict[str, torch.Tensor]:
    shapes = {
        k: {"shape": list(v.shape), "dtype": str(v.dtype).removeprefix("torch.")}
        for k, v in module.state_dict().items()
    }
    state = _fill_module().fill_state_dict(shapes, seed)
    return {prefix + k: v for k, v in state.items()}


def _write(path: Path, make_state) -> None:
    if path.is_file():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(make_state(), path)


def install(model_root: Path) -> None:
    from facecontrol.models.bisenet import BiSeNet
    from facecontrol.models.d3dfr import D3DFRRegressor
    from facecontrol.models.seg_unet import AdaptingAreaPredictor

    third_party = model_root / "face_adapter" / "third_party"
    _write(third_party / "d3dfr_res50_nofc.pth", lambda: filled_state(D3DFRRegressor(), prefix="module."))
    _write(third_party / "79999_iter.pth", lambda: filled_state(BiSeNet()))
    _write(model_root / "face_adapter" / "net_seg_res18.pth", lambda: filled_state(AdaptingAreaPredictor()))
    bfm = third_party / "BFM_model_front.mat"
    if not bfm.is_file():
        shutil.copyfile(golden_dir() / "fa_bfm" / "synthetic_BFM_model_front.mat", bfm)
