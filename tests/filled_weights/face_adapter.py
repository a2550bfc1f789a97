"""Face-Adapter test weights in the released layouts, filled by the golden fill rule.

- face_adapter/: net_id2token.pth (bfloat16, as released), net_image2token.pth (float32), controlnet/ (diffusers
  folder), vision_encoder/ (transformers folder), third_party/insightface_glint360k.pth. The four files of the
  spatial nodes (seg UNet, d3dfr, BFM, BiSeNet) come from spatial.py.
- checkpoints/v1-5-pruned-emaonly.safetensors (the real file's name): an SD1.5-shaped single-file checkpoint that CheckpointLoaderSimple detects
  as SD1.5: the UNet keeps SD1.5's 320 base channels, 768-wide context and 8 heads but has two levels of one
  block (attention only at the lower one) so 25 CPU steps take seconds; the VAE and the CLIP-L text encoder are
  full size because ComfyUI builds those from fixed configs.
- vae/vae-ft-mse-840000-ema-pruned.safetensors: a TAESD-shaped VAE under the real file's name, which VAELoader
  accepts (ComfyUI tells the kind from the keys): decoding 512x512 with the full SD VAE costs over a minute on the
  shared CI CPU for each workflow run, the tiny one about a second. The checkpoint keeps the full VAE.

The ControlNet and the UNet share one block layout, as a real Face-Adapter ControlNet shares SD1.5's. Files are
generated once into a cache folder (FACECONTROL_TEST_WEIGHTS_CACHE, default ~/.cache/facecontrol/filled_weights)
and linked into each test session's model folder.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import torch

from golden_fixtures import _fill_module

VERSION = "fa3"
SEED = 4
# The real files' names, so the shipped workflows name them; the manifest's sha256 tells the real ones apart.
CKPT_NAME = "v1-5-pruned-emaonly.safetensors"
VAE_NAME = "vae-ft-mse-840000-ema-pruned.safetensors"

UNET_CONFIG = dict(
    sample_size=64,
    in_channels=4,
    out_channels=4,
    layers_per_block=1,
    block_out_channels=(320, 320),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
    cross_attention_dim=768,
    attention_head_dim=8,
    norm_num_groups=32,
)
# The same UNet in ComfyUI's (ldm) terms, for the key conversion.
LDM_UNET_CONFIG = {
    "num_res_blocks": [1, 1],
    "channel_mult": [1, 1],
    "transformer_depth": [0, 1],
    "transformer_depth_output": [0, 0, 1, 1],
    "transformer_depth_middle": 1,
}
CLIP_TEXT_CONFIG = dict(
    vocab_size=49408,
    hidden_size=768,
    intermediate_size=3072,
    num_hidden_layers=12,
    num_attention_heads=12,
    max_position_embeddings=77,
    hidden_act="quick_gelu",
)
VISION_CONFIG = dict(
    hidden_size=1280,
    intermediate_size=5120,
    num_hidden_layers=1,
    num_attention_heads=16,
    image_size=224,
    patch_size=14,
    hidden_act="gelu",
    projection_dim=1024,
)


def cache_dir() -> Path:
    default = Path.home() / ".cache" / "facecontrol" / "filled_weights"
    return Path(os.environ.get("FACECONTROL_TEST_WEIGHTS_CACHE", default)) / f"face_adapter_{VERSION}"


def filled(module: torch.nn.Module, seed: int = SEED) -> dict[str, torch.Tensor]:
    shapes = {
        k: {"shape": list(v.shape), "dtype": str(v.dtype).removeprefix("torch.")}
        for k, v in module.state_dict().items()
    }
    return _fill_module().fill_state_dict(shapes, seed)


def filled_module(module: torch.nn.Module, seed: int = SEED) -> torch.nn.Module:
    module.load_state_dict(filled(module, seed), strict=True)
    return module.eval()


# Full SD1.5 and ViT-H/14 sizes, for benchmarks (scripts/bench_face_adapter.py --size full).
FULL_UNET_CONFIG = dict(
    sample_size=64,
    in_channels=4,
    out_channels=4,
    layers_per_block=2,
    block_out_channels=(320, 640, 1280, 1280),
    cross_attention_dim=768,
    attention_head_dim=8,
)
FULL_LDM_UNET_CONFIG = {
    "num_res_blocks": [2, 2, 2, 2],
    "channel_mult": [1, 2, 4, 4],
    "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0],
    "transformer_depth_output": [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
    "transformer_depth_middle": 1,
}
FULL_VISION_CONFIG = dict(VISION_CONFIG, num_hidden_layers=32)


def diffusers_unet(config: dict = UNET_CONFIG):
    from diffusers import UNet2DConditionModel

    return filled_module(UNet2DConditionModel(**config), SEED)


def diffusers_controlnet(config: dict = UNET_CONFIG):
    from diffusers import ControlNetModel, UNet2DConditionModel

    shell = UNet2DConditionModel(**config)
    return filled_module(
        ControlNetModel.from_unet(shell, conditioning_embedding_out_channels=(16, 32, 96, 256)), SEED + 1
    )


def diffusers_vae():
    from diffusers import AutoencoderKL

    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        sample_size=512,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(128, 256, 512, 512),
        layers_per_block=2,
    )
    return filled_module(vae, SEED + 2)


def tiny_vae_state() -> dict[str, torch.Tensor]:
    """ComfyUI's TAESD layout, filled; its latent scale and shift stay at TAESD's SD1 values (1, 0)."""
    import comfy.taesd.taesd

    state = filled(comfy.taesd.taesd.TAESD(latent_channels=4), SEED + 5)
    state["vae_scale"] = torch.tensor(1.0)
    state["vae_shift"] = torch.tensor(0.0)
    return state


def clip_text_model():
    from transformers import CLIPTextConfig, CLIPTextModel

    return filled_module(CLIPTextModel(CLIPTextConfig(**CLIP_TEXT_CONFIG)), SEED + 3)


def unet_to_ldm(state: dict[str, torch.Tensor], ldm_config: dict = LDM_UNET_CONFIG) -> dict[str, torch.Tensor]:
    import comfy.utils

    key_map = comfy.utils.unet_to_diffusers(ldm_config)
    missing = sorted(set(state) - set(key_map))
    if missing:
        raise RuntimeError(f"unmapped UNet keys: {missing[:5]}")
    return {key_map[k]: v for k, v in state.items()}


def _comfy_importable() -> None:
    from comfy_client import comfyui_dir

    if str(comfyui_dir()) not in sys.path:
        sys.path.insert(0, str(comfyui_dir()))
    import comfy.cli_args

    if not torch.cuda.is_available():
        comfy.cli_args.args.cpu = True  # read when comfy.model_management is first imported


def _half(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in state.items()}


def build_cache(root: Path, full: bool = False) -> None:
    """Write every file into `root`; full=True uses SD1.5's and ViT-H/14's real sizes (benchmarks)."""
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModel

    from facecontrol.models.iresnet import iresnet100
    from facecontrol.models.token_mappers import ID2Token, Image2Token

    _comfy_importable()
    tmp = root.with_name(root.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    fa = tmp / "face_adapter"
    (fa / "third_party").mkdir(parents=True)
    torch.save({k: v.bfloat16() for k, v in filled(ID2Token(), SEED + 10).items()}, fa / "net_id2token.pth")
    torch.save(filled(Image2Token(), SEED + 11), fa / "net_image2token.pth")
    torch.save(filled(iresnet100(), SEED + 12), fa / "third_party" / "insightface_glint360k.pth")
    unet_config = FULL_UNET_CONFIG if full else UNET_CONFIG
    diffusers_controlnet(unet_config).save_pretrained(fa / "controlnet")
    vision_config = FULL_VISION_CONFIG if full else VISION_CONFIG
    filled_module(CLIPVisionModel(CLIPVisionConfig(**vision_config)), SEED + 13).save_pretrained(fa / "vision_encoder")

    vae = diffusers_vae().state_dict()
    (tmp / "vae").mkdir()
    save_file(_half(vae if full else tiny_vae_state()), tmp / "vae" / VAE_NAME)
    checkpoint = {
        f"model.diffusion_model.{k}": v
        for k, v in unet_to_ldm(
            diffusers_unet(unet_config).state_dict(), FULL_LDM_UNET_CONFIG if full else LDM_UNET_CONFIG
        ).items()
    }
    checkpoint.update({f"first_stage_model.{k}": v for k, v in vae.items()})
    checkpoint.update({f"cond_stage_model.transformer.{k}": v for k, v in clip_text_model().state_dict().items()})
    (tmp / "checkpoints").mkdir()
    save_file(_half(checkpoint), tmp / "checkpoints" / CKPT_NAME)
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)


def install(model_root: Path) -> None:
    root = cache_dir()
    if not (root / "checkpoints" / CKPT_NAME).is_file():
        root.parent.mkdir(parents=True, exist_ok=True)
        build_cache(root)
    for src in sorted(p for p in root.rglob("*") if p.is_file()):
        dst = model_root / src.relative_to(root)
        if dst.exists():
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src, dst)
        except OSError:
            shutil.copyfile(src, dst)
