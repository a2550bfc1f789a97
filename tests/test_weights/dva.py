"""DVA test weights in the released layouts, filled by the golden fill rule.

- `dva/diffusion_video_autoencoder/epoch=51-step=1000000.ckpt`: a Lightning checkpoint whose
  `state_dict` holds `ema_model.*` and `model.*` UNets and the `ema_model.encoder.*` networks (the
  frozen encoders; the loader falls back to that copy for `model.`). The encoders (IR-SE50,
  MobileNetV2-GDConv, BiSeNet, Linear 614->512) are at their released sizes. The UNet keeps the
  released layout (multipliers 1,1,2,2,4,4, two blocks per level, attention at 16 px, 512-d
  conditions) at 32 instead of 128 base channels: 1/16 of the compute, so CI on two CPU cores can
  run a few frames; the loader reads the width from the tensors.
- `dva/diffusion_video_autoencoder_cls/last.ckpt`: classifier (40,512) with `conds_mean`/`conds_std`.
- `dva/clip/ViT-B-16.pt`: a CLIP ViT in OpenAI's key layout (the real file is a TorchScript archive of
  the same state dict; the loader reads either), at width 64, one layer per tower, patch 32, 224 px,
  with the real 49408-token vocabulary and 77-token context, so the CLIP edit runs in CI.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import torch

from facecontrol import model_names as names

TEST_UNET = dict(model_channels=32, embed_channels=512, dropout=0.0)
CKPT = Path("dva") / names.DVA_CHECKPOINT
CLS = Path(names.DVA_CLASSIFIER)
CLIP = Path(names.DVA_CLIP)


def _fill():
    golden = Path(os.environ.get("FACE_GOLDEN_DIR", Path(__file__).resolve().parents[3] / "shared" / "golden"))
    spec = importlib.util.spec_from_file_location("face_golden_fill", golden / "fill.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _shapes(module: torch.nn.Module) -> dict:
    return {k: {"shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", "")} for k, v in module.state_dict().items()}


def dva_state(seed: int = 5) -> dict[str, torch.Tensor]:
    """The Lightning `state_dict` of the test checkpoint."""
    from facecontrol.models.dva_face_encoder import DVAFaceEncoder
    from facecontrol.models.dva_unet import DVAUNet

    fill = _fill()
    with torch.device("meta"):
        unet_shapes = _shapes(DVAUNet(**TEST_UNET))
        encoder_shapes = _shapes(DVAFaceEncoder())
    state = {}
    for prefix, unet_seed in (("ema_model.", seed), ("model.", seed + 1)):
        state.update({prefix + k: v for k, v in fill.fill_state_dict(unet_shapes, unet_seed).items()})
    state.update({"ema_model.encoder." + k: v for k, v in fill.fill_state_dict(encoder_shapes, seed).items()})
    return state


def classifier_state(seed: int = 5) -> dict[str, torch.Tensor]:
    shapes = {"classifier.weight": [40, 512], "classifier.bias": [40], "ema_classifier.weight": [40, 512],
              "ema_classifier.bias": [40], "conds_mean": [1, 512], "conds_std": [1, 512]}
    state = _fill().fill_state_dict(shapes, seed)
    state["conds_std"] = state["conds_std"].abs() + 0.05  # a standard deviation is positive
    return state


def clip_state(seed: int = 5) -> dict[str, torch.Tensor]:
    from open_clip.model import CLIP as OpenClip, CLIPTextCfg, CLIPVisionCfg

    with torch.device("meta"):
        model = OpenClip(32, CLIPVisionCfg(layers=1, width=64, patch_size=32, image_size=224),
                         CLIPTextCfg(context_length=77, vocab_size=49408, width=64, heads=1, layers=1), quick_gelu=True)
    state = _fill().fill_state_dict(_shapes(model), seed)
    state["logit_scale"] = torch.tensor(4.6052)
    return state


def _lightning(state: dict) -> dict:
    return {"epoch": 51, "global_step": 1000000, "pytorch-lightning_version": "1.4.5", "state_dict": state,
            "optimizer_states": [], "lr_schedulers": []}


def install(model_root: Path) -> None:
    for rel, make in ((CKPT, dva_state), (CLS, classifier_state), (CLIP, clip_state)):
        path = Path(model_root) / rel
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(make() if rel == CLIP else _lightning(make()), path)
