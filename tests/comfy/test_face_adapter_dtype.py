"""Face-Adapter's networks outside the sampler run in the dtype ComfyUI picks for the device (bf16 / fp16 where
supported, fp32 on CPU), batched over frames: iresnet100, the ViT-H tower, the d3dfr regressor, the seg UNet and
BiSeNet. The token mappers (ID2Token, Image2Token) stay fp32. bf16 (which runs on CPU) matches fp32 on the filled
weights in the released layouts within the stated tolerances, on crops of the real photo (two frames, batched).

Measured (relative L2 unless said): iresnet100 layer4 3.4% (the filled 100-layer net's features reach 5e8, so
this is the worst case), ViT tower 0.6%, d3dfr 0.6%, seg UNet probability 0.003 absolute, BiSeNet logits 0.7%,
swap mask 0.01% of pixels."""

from __future__ import annotations

import pytest
import torch

from media import load_rgb

IRESNET_TOLERANCE = 0.06
TOLERANCE = 0.02  # ViT tower, d3dfr, BiSeNet logits
SEG_PROB_TOLERANCE = 0.01  # absolute, on the sigmoid output
MASK_FLIP_TOLERANCE = 0.005  # fraction of swap-mask pixels


@pytest.fixture(scope="module")
def face_nodes(comfy_in_process):
    import comfy.cli_args

    if not torch.cuda.is_available():
        comfy.cli_args.args.cpu = True
    from facecontrol.nodes import face_nodes

    return face_nodes


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from filled_weights import face_adapter, spatial

    root = tmp_path_factory.mktemp("fa_dtype")
    face_adapter.install(root)
    spatial.install(root)
    return root / "face_adapter"


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def both(face_nodes, path, build):
    """The node's builder in fp32 and in bf16."""
    return (
        face_nodes._build_in_dtype(path, build, "float32").eval(),
        face_nodes._build_in_dtype(path, build, "bfloat16").eval(),
    )


def crops():
    photo = torch.from_numpy(load_rgb("astronaut.png")).float() / 255.0
    x512 = photo[None, :512, :512].movedim(-1, 1) * 2 - 1
    x256 = photo[None, :256, 150:406].movedim(-1, 1) * 2 - 1
    return torch.cat([x512, x512.flip(3)]), torch.cat([x256, x256.flip(3)])


def test_on_cpu_comfyui_picks_fp32(face_nodes):
    assert face_nodes.network_dtype(torch.device("cpu")) == torch.float32


@torch.no_grad()
def test_bf16_backbones_match_fp32(face_nodes, weights):
    from facecontrol.models.face_adapter_vision import load_clip_vision_tower
    from facecontrol.models.iresnet import load_iresnet100
    from facecontrol.pipelines import face_adapter as fa

    x512, x256 = crops()
    iresnet = both(face_nodes, weights / "third_party" / "insightface_glint360k.pth", load_iresnet100)
    assert next(iresnet[1].parameters()).dtype == torch.bfloat16
    small = torch.nn.functional.interpolate(x256, size=(128, 128), mode="bilinear", align_corners=False)
    assert (
        rel(iresnet[1].spatial_tokens(small.bfloat16()).float(), iresnet[0].spatial_tokens(small)) < IRESNET_TOLERANCE
    )

    vision = both(face_nodes, weights / "vision_encoder" / "config.json", lambda p: load_clip_vision_tower(p.parent))
    pixels = fa.clip_pixel_values(((x512.movedim(1, -1) + 1) * 127.5).round().byte().numpy())
    assert rel(vision[1](pixels.bfloat16()).float(), vision[0](pixels)) < TOLERANCE


@torch.no_grad()
def test_bf16_regressor_and_masks_match_fp32(face_nodes, weights):
    from facecontrol.face.adapting_mask import swap_mask_from_parsing
    from facecontrol.models.bisenet import load_bisenet
    from facecontrol.models.d3dfr import load_d3dfr
    from facecontrol.models.seg_unet import load_seg_unet

    x512, x256 = crops()
    d3dfr = both(face_nodes, weights / "third_party" / "d3dfr_res50_nofc.pth", load_d3dfr)
    assert rel(d3dfr[1](x256.bfloat16()).float(), d3dfr[0](x256)) < TOLERANCE

    seg = both(face_nodes, weights / "net_seg_res18.pth", load_seg_unet)
    pts = torch.rand(x512.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    full = seg[0](torch.cat([x512, pts], 1))
    half = seg[1](torch.cat([x512, pts], 1).bfloat16()).float()
    # (the filled UNet sits near 0.5 everywhere, so thresholded masks would flip on noise: compare probabilities)
    assert float((half - full).abs().max()) < SEG_PROB_TOLERANCE

    bisenet = both(face_nodes, weights / "third_party" / "79999_iter.pth", load_bisenet)
    parsed = [
        net.parse(x512.to(dtype), preprocess="none") for net, dtype in zip(bisenet, (torch.float32, torch.bfloat16))
    ]
    assert rel(parsed[1].logits.float(), parsed[0].logits) < TOLERANCE
    masks = [swap_mask_from_parsing(p.labels[:, 0]) for p in parsed]
    assert float((masks[0] != masks[1]).float().mean()) < MASK_FLIP_TOLERANCE
