"""DVA test weights in the released layouts, filled by the golden fill rule.

- `dva/diffusion_video_autoencoder/epoch=51-step=1000000.ckpt`: a Lightning checkpoint whose
  `state_dict` holds `ema_model.*` and `model.*` UNets and the `ema_model.encoder.*` networks (the
  frozen encoders; the loader falls back to that copy for `model.`). The encoders (IR-SE50,
  MobileNetV2-GDConv, BiSeNet, Linear 614->512) are at their released sizes. The UNet keeps the
  released layout (multipliers 1,1,2,2,4,4, two blocks per level, attention at 16 px, 512-d
  conditions) at 32 instead of 128 base channels: 1/16 of the compute, so CI on two CPU cores can
  run a few frames; the loader reads the width from the tensors.
- `dva/diffusion_video_autoencoder_cls/last.ckpt`: classifier (40,512) with `conds_mean`/`conds_std`.
- `dva/clip/ViT-B-16.pt`: a CLIP ViT written like OpenAI's release, a TorchScript archive (the weights
  half precision as OpenAI stores them, `input_resolution`/`context_length`/`vocab_size` tensors beside
  them), at width 64, one layer per tower, patch 32, 224 px, with the real 49408-token vocabulary and
  77-token context, so the CLIP edit runs in CI. The pack reads its tensors without its code.
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
    return {
        k: {"shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", "")} for k, v in module.state_dict().items()
    }


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
    shapes = {
        "classifier.weight": [40, 512],
        "classifier.bias": [40],
        "ema_classifier.weight": [40, 512],
        "ema_classifier.bias": [40],
        "conds_mean": [1, 512],
        "conds_std": [1, 512],
    }
    state = _fill().fill_state_dict(shapes, seed)
    state["conds_std"] = state["conds_std"].abs() + 0.05  # a standard deviation is positive
    return state


def clip_state(seed: int = 5) -> dict[str, torch.Tensor]:
    from open_clip.model import CLIP as OpenClip
    from open_clip.model import CLIPTextCfg, CLIPVisionCfg

    with torch.device("meta"):
        model = OpenClip(
            32,
            CLIPVisionCfg(layers=1, width=64, patch_size=32, image_size=224),
            CLIPTextCfg(context_length=77, vocab_size=49408, width=64, heads=1, layers=1),
            quick_gelu=True,
        )
    state = _fill().fill_state_dict(_shapes(model), seed)
    state["logit_scale"] = torch.tensor(4.6052)
    return state


def clip_module(state: dict[str, torch.Tensor]) -> torch.nn.Module:
    """open_clip's CLIP (QuickGELU, float32) holding a state dict in OpenAI's key layout."""
    from open_clip.model import CLIP as OpenClip
    from open_clip.model import CLIPTextCfg, CLIPVisionCfg

    vision_width, patch = state["visual.conv1.weight"].shape[0], state["visual.conv1.weight"].shape[-1]
    grid = round((state["visual.positional_embedding"].shape[0] - 1) ** 0.5)
    text_width = state["ln_final.weight"].shape[0]
    vision_layers = len({k.split(".")[3] for k in state if k.startswith("visual.transformer.resblocks.")})
    text_layers = len({k.split(".")[2] for k in state if k.startswith("transformer.resblocks.")})
    model = OpenClip(
        state["text_projection"].shape[1],
        CLIPVisionCfg(layers=vision_layers, width=vision_width, patch_size=patch, image_size=patch * grid),
        CLIPTextCfg(
            context_length=state["positional_embedding"].shape[0],
            vocab_size=state["token_embedding.weight"].shape[0],
            width=text_width,
            heads=max(1, text_width // 64),
            layers=text_layers,
        ),
        quick_gelu=True,
    )
    model.load_state_dict(state)
    return model.eval()


def write_openai_clip_archive(model: torch.nn.Module, path: Path) -> torch.nn.Module:
    """Save `model` as OpenAI released CLIP: a TorchScript archive, weights in half precision, the three
    metadata tensors as buffers. Returns the scripted module (its compiled code is the archive's code)."""
    import copy

    from open_clip.model import convert_weights_to_fp16

    released = copy.deepcopy(model).eval()
    convert_weights_to_fp16(released)
    image_size = released.visual.image_size
    metadata = {
        "input_resolution": image_size[0] if isinstance(image_size, (tuple, list)) else image_size,
        "context_length": released.context_length,
        "vocab_size": released.vocab_size,
    }
    for name, value in metadata.items():
        if hasattr(released, name):
            delattr(released, name)
        released.register_buffer(name, torch.tensor(value))
    scripted = torch.jit.script(released)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.save(scripted, str(path))
    return scripted


def _lightning(state: dict) -> dict:
    return {
        "epoch": 51,
        "global_step": 1000000,
        "pytorch-lightning_version": "1.4.5",
        "state_dict": state,
        "optimizer_states": [],
        "lr_schedulers": [],
    }


def install(model_root: Path) -> None:
    for rel, make in ((CKPT, dva_state), (CLS, classifier_state), (CLIP, clip_state)):
        path = Path(model_root) / rel
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if rel == CLIP:
            write_openai_clip_archive(clip_module(make()), path)
        else:
            torch.save(_lightning(make()), path)
