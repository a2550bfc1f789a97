"""Face-Adapter's infer.py order for one source and one driving/target photo, written out in plain PyTorch,
OpenCV and diffusers from the facts of REFERENCE.md section 1.4 and the authors' code (order, constants,
formulas), for the end-to-end equality test. It uses none of the pack's pipeline functions for the steps it
checks: only the pack's network classes and weight loaders (d3dfr, iresnet100, the token mappers, the seg UNet,
BiSeNet), transformers' CLIP vision model and diffusers' UNet, ControlNet, tiny VAE decoder and Euler scheduler.

The five points: the authors detect with SCRFD (ONNX, cannot be filled); here both sides take the box and the
five points from the same open detector (mediapipe), on the photo and again on the 512 crop.

Differences from the authors' run that stay here (they are the test's set-up, not the graph's): fp32 on CPU
(the authors run the diffusion models in fp16 on CUDA); the token mappers in eval mode (the authors' run keeps
their dropout 0.1 on, docs/FACE_ADAPTER.md); the empty prompt is the checkpoint's CLIP text encoder on ""
(the authors ship it as empty_prompt_embedding.pth, made the same way from SD1.5's encoder); 2 Euler steps
instead of 25; the test weights' VAE is TAESD-shaped (decoded by diffusers' AutoencoderTiny).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

CROP_RATIO = 0.81
BOX_512 = np.array([[80, 80], [80, 432], [432, 432], [432, 80]], np.float64)
# the ArcFace 112 template, x + 8, x2, then x + 16, y x2 (infer.py's mean_face_lm5p_256)
ARCFACE_112 = np.array(
    [[30.2946, 51.6963], [65.5318, 51.5014], [48.0252, 71.7366], [33.5493, 92.3655], [62.7299, 92.2041]]
)
TEMPLATE_256 = np.stack([(ARCFACE_112[:, 0] + 8) * 2 + 16, ARCFACE_112[:, 1] * 2], 1).astype(np.float32)
FOCAL = 1015 * 256 / 224
CANVAS = 256
CAMERA_DISTANCE = 10.0
CFG = 5.0
SD_VAE_SCALE = 0.18215  # sd-vae-ft-mse's scaling_factor, which the authors' pipeline divides by
# SD1.5's scheduler_config.json, the config infer.py builds its EulerDiscreteScheduler from
SD15_SCHEDULER = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    steps_offset=1,
    prediction_type="epsilon",
)
EMPTY_PROMPT_IDS = [49406] + [49407] * 76  # "" under SD1.5's tokenizer: BOS, then EOS padded to 77


# ---- geometry -------------------------------------------------------------------------------------------------
def _complex(points: np.ndarray) -> np.ndarray:
    p = np.asarray(points, np.float64)
    return p[:, 0] + 1j * p[:, 1]


def _matrix(a: complex, b: complex) -> np.ndarray:
    """w = a z + b as a 2x3 matrix."""
    return np.array([[a.real, -a.imag, b.real], [a.imag, a.real, b.imag]])


def procrustes_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """transformation_from_points: centre both sets, scale by the ratio of their RMS spreads (np.std over every
    coordinate), rotate by the orthogonal Procrustes rotation."""
    z, w = _complex(src), _complex(dst)
    zc, wc = z - z.mean(), w - w.mean()
    scale = np.sqrt((np.abs(wc) ** 2).mean() / 2) / np.sqrt((np.abs(zc) ** 2).mean() / 2)
    rotation = np.sum(np.conj(zc) * wc)
    a = scale * rotation / abs(rotation)
    return _matrix(a, w.mean() - a * z.mean())


def lstsq_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """get_affine_transform: the least-squares similarity x' = a x - b y + tx, y' = b x + a y + ty through its
    4x4 normal equations, at the authors' precision: each point's products in float32 (SCRFD's keypoints and the
    template are float32), accumulated in float64. (Fitted in float64 throughout, the matrix moves by ~1e-7,
    enough to flip single levels of the bilinear 256 crop on ~1% of its values.)"""
    p, q = np.asarray(src, np.float32), np.asarray(dst, np.float32)
    px, py, qx, qy = p[:, 0], p[:, 1], q[:, 0], q[:, 1]

    def total(per_point: np.ndarray) -> float:
        return float(sum(float(v) for v in per_point))

    r2, sx, sy = total(px * px + py * py), total(px), total(py)
    n = float(len(p))
    normal = np.array([[r2, 0, sx, sy], [0, r2, -sy, sx], [sx, -sy, n, 0], [sy, sx, 0, n]], np.float64)
    rhs = np.array([total(px * qx + py * qy), total(px * qy - py * qx), total(qx), total(qy)])
    a, b, tx, ty = np.linalg.solve(normal, rhs)
    return np.array([[a, -b, tx], [b, a, ty]])


def loose_box_corners(box: np.ndarray) -> np.ndarray:
    """Step 2: the bbox centre, the side from the width (the authors' max(w, w)), half-side = side x 0.81; in
    float32, the dtype of SCRFD's boxes that infer.py computes with."""
    x1, y1, x2, y2 = np.asarray(box[:4], np.float32)
    side = max(x2 - x1, x2 - x1)
    cx, cy = 0.5 * (x2 + x1), 0.5 * (y2 + y1)
    half = side * np.float32(CROP_RATIO)
    return np.array(
        [[cx - half, cy - half], [cx - half, cy + half], [cx + half, cy + half], [cx + half, cy - half]], np.float32
    )


def authors_key(boxes: np.ndarray) -> int:
    """The face infer.py takes: the largest (x2-x1)*y2 - y1 (sic)."""
    b = np.asarray(boxes, np.float64)
    return int(np.argmax((b[:, 2] - b[:, 0]) * b[:, 3] - b[:, 1]))


def detect_one(detector, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    faces = detector.detect(rgb)
    if not faces:
        raise RuntimeError("no face found")
    face = faces[authors_key(np.stack([f.box for f in faces]))]
    return np.asarray(face.box, np.float64), np.asarray(face.lm5, np.float32)


@dataclass
class Crops:
    crop512: np.ndarray  # (512,512,3) uint8
    crop256: np.ndarray  # (256,256,3) uint8
    warp256: np.ndarray  # (2,3) 512 -> 256


def crop_chain(detector, rgb: np.ndarray) -> Crops:
    """Steps 1-3: detect, loose box -> 512 (bilinear), detect again on the crop, 5 points -> 256."""
    box, _ = detect_one(detector, rgb)
    to512 = procrustes_similarity(loose_box_corners(box), BOX_512)
    crop512 = cv2.warpAffine(rgb, to512, (512, 512), flags=cv2.INTER_LINEAR)
    _, points = detect_one(detector, crop512)
    warp = lstsq_similarity(points, TEMPLATE_256)
    crop256 = cv2.warpAffine(crop512, warp, (256, 256), flags=cv2.INTER_LINEAR)
    return Crops(crop512, crop256, warp)


def signed(rgb: np.ndarray) -> torch.Tensor:
    """ToTensor then Normalize(0.5, 0.5): (1,3,H,W) in [-1,1]."""
    return (torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255.0 - 0.5) / 0.5


# ---- 3DMM and drawing ------------------------------------------------------------------------------------------
class BFMLandmarks:
    """BFM_model_front.mat's mean shape (re-centred), identity and expression bases and 68 keypoints, projected by
    the pinhole camera of d3dfr (focal 1015*256/224, centre 128, camera at z = 10), y flipped to image rows."""

    def __init__(self, mat_path: Path) -> None:
        from scipy.io import loadmat

        mat = loadmat(str(mat_path))
        mean = torch.from_numpy(mat["meanshape"]).float().view(-1, 3)
        self.mean = (mean - mean.mean(0, keepdim=True)).view(-1)
        self.id_base = torch.from_numpy(mat["idBase"]).float()
        self.exp_base = torch.from_numpy(mat["exBase"]).float()
        self.keypoints = torch.from_numpy(mat["keypoints"].astype(np.int64)).view(68) - 1

    @staticmethod
    def rotation(angles: torch.Tensor) -> torch.Tensor:
        """R = Rz Ry Rx of the (x, y, z) angles; points are rows, so they are multiplied by R transposed."""
        x, y, z = angles[0]
        cx, sx, cy, sy, cz, sz = torch.cos(x), torch.sin(x), torch.cos(y), torch.sin(y), torch.cos(z), torch.sin(z)
        one, zero = torch.ones(()), torch.zeros(())
        rx = torch.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx]).view(3, 3)
        ry = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy]).view(3, 3)
        rz = torch.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one]).view(3, 3)
        return rz @ ry @ rx

    def lm68(self, coeffs: torch.Tensor) -> torch.Tensor:
        """(1, >=257) -> (1,68,2) in the 256 canvas (id 0:80, exp 80:144, angles 224:227, trans 254:257)."""
        shape = self.mean + self.id_base @ coeffs[0, :80] + self.exp_base @ coeffs[0, 80:144]
        points = shape.view(-1, 3)[self.keypoints]
        points = points @ self.rotation(coeffs[:, 224:227]).T + coeffs[0, 254:257]
        depth = CAMERA_DISTANCE - points[:, 2]
        u = FOCAL * points[:, 0] / depth + CANVAS / 2
        v = FOCAL * points[:, 1] / depth + CANVAS / 2
        return torch.stack([u, CANVAS - 1 - v], 1)[None]


def rainbow_colours(n: int = 70) -> list[list[int]]:
    import matplotlib

    colours = matplotlib.colormaps["rainbow"](np.linspace(0, 1, n))
    return (255 * colours).astype(int)[:, :3].tolist()


def draw_70(lm68: torch.Tensor, gaze: torch.Tensor, warp256: np.ndarray) -> torch.Tensor:
    """Step 5's drawing: the two gaze points (offset by the eye length from the eye centre), 70 filled circles of
    radius 2 on a black 256 canvas (colours given to OpenCV in reversed order, read back as RGB), warped into the
    512 crop with the inverse of the 512 -> 256 matrix (bilinear, black border); (1,3,512,512) in [-1,1]."""
    p = lm68[0]
    gaze = gaze[0]
    points = [p]
    for (a, b), g in (((36, 39), gaze[:2]), ((42, 45), gaze[2:4])):
        length = torch.linalg.norm(p[b] - p[a])
        points.append((g * length + (p[a] + p[b]) * 0.5)[None])
    pts = np.round(torch.cat(points).numpy()).astype(int)
    canvas = np.zeros((CANVAS, CANVAS, 3), np.uint8)
    for (x, y), c in zip(pts, rainbow_colours(len(pts))):
        cv2.circle(canvas, (int(x), int(y)), 2, (c[2], c[1], c[0]), -1)
    image = cv2.warpAffine(
        canvas, warp256, (512, 512), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT
    )
    return signed(image)


def swap_mask(labels: torch.Tensor) -> torch.Tensor:
    """Step 8: BiSeNet labels (1,1,512,512) -> the swap mask: skin..mouth minus glasses grown by 65, with ears,
    occlusions (glasses, earring, necklace, hat) cut out, grown by 5."""
    m = labels
    face = (((m > 0) & (m < 7)) | ((m > 9) & (m < 14))).float() - (m == 6).float()
    with_ears = ((m > 0) & (m < 14)).float() - (m == 9).float() - (m == 6).float()
    occlusion = ((m == 6) | (m == 9) | (m == 15) | (m == 18)).float()
    mask = torch.maximum(with_ears, F.max_pool2d(face, 65, 1, 32)) * (1 - occlusion)
    return F.max_pool2d(mask, 5, 1, 2)


def blend_weight(mask: torch.Tensor) -> torch.Tensor:
    """Step 10: pad 16, max-pool 17, average-pool 17, back to 512."""
    w = F.max_pool2d(F.pad(mask, (16, 16, 16, 16)), 17, 1, 8)
    return F.avg_pool2d(w, 17, 1, 8)[:, :, 16:528, 16:528]


# ---- networks -------------------------------------------------------------------------------------------------
@dataclass
class Networks:
    d3dfr: torch.nn.Module
    bfm: BFMLandmarks
    arcface: torch.nn.Module
    id2token: torch.nn.Module
    image2token: torch.nn.Module
    vision: torch.nn.Module
    seg: torch.nn.Module
    bisenet: torch.nn.Module
    unet: torch.nn.Module
    controlnet: torch.nn.Module
    vae_decoder: torch.nn.Module
    empty_prompt: torch.Tensor


def _mapper(cls, path: Path) -> torch.nn.Module:
    module = cls()
    state = torch.load(path, map_location="cpu", weights_only=True)
    module.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return module.eval()  # the authors leave them in train mode (dropout 0.1); a documented difference


def _empty_prompt(checkpoint: Path) -> torch.Tensor:
    from safetensors.torch import load_file
    from transformers import CLIPTextConfig, CLIPTextModel

    from filled_weights.face_adapter import CLIP_TEXT_CONFIG

    prefix = "cond_stage_model.transformer."
    state = {k[len(prefix) :]: v.float() for k, v in load_file(checkpoint).items() if k.startswith(prefix)}
    model = CLIPTextModel(CLIPTextConfig(**CLIP_TEXT_CONFIG))
    model.load_state_dict(state, strict=False)
    with torch.no_grad():
        return model(torch.tensor([EMPTY_PROMPT_IDS])).last_hidden_state


def _tiny_decoder(vae_file: Path) -> torch.nn.Module:
    """The test VAE file (ComfyUI's TAESD layout, taesd_decoder.N) in diffusers' AutoencoderTiny (decoder.layers.N-1)."""
    from diffusers import AutoencoderTiny
    from safetensors.torch import load_file

    state = load_file(vae_file)
    vae = AutoencoderTiny(latent_channels=4)
    decoder = {}
    for key, value in state.items():
        if key.startswith("taesd_decoder."):
            index, rest = key[len("taesd_decoder.") :].split(".", 1)
            decoder[f"layers.{int(index) - 1}.{rest}"] = value.float()
    vae.decoder.load_state_dict(decoder, strict=True)
    if float(state["vae_scale"]) != 1.0 or float(state["vae_shift"]) != 0.0:
        raise ValueError("the test VAE was expected with TAESD's SD1 scale 1 and shift 0")
    return vae.eval()


def load_networks(model_root: Path, checkpoint: Path, vae_file: Path) -> Networks:
    from diffusers import ControlNetModel, UNet2DConditionModel
    from transformers import CLIPVisionModel

    from facecontrol.models.bisenet import load_bisenet
    from facecontrol.models.d3dfr import load_d3dfr
    from facecontrol.models.iresnet import load_iresnet100
    from facecontrol.models.seg_unet import load_seg_unet
    from facecontrol.models.token_mappers import ID2Token, Image2Token

    fa = model_root / "face_adapter"
    third = fa / "third_party"
    return Networks(
        d3dfr=load_d3dfr(third / "d3dfr_res50_nofc.pth").eval(),
        bfm=BFMLandmarks(third / "BFM_model_front.mat"),
        arcface=load_iresnet100(third / "insightface_glint360k.pth").eval(),
        id2token=_mapper(ID2Token, fa / "net_id2token.pth"),
        image2token=_mapper(Image2Token, fa / "net_image2token.pth"),
        vision=CLIPVisionModel.from_pretrained(fa / "vision_encoder").eval(),
        seg=load_seg_unet(fa / "net_seg_res18.pth").eval(),
        bisenet=load_bisenet(third / "79999_iter.pth").eval(),
        unet=UNet2DConditionModel.from_pretrained(fa / "pretrained_unet").eval(),
        controlnet=ControlNetModel.from_pretrained(fa / "controlnet").eval(),
        vae_decoder=_tiny_decoder(vae_file),
        empty_prompt=_empty_prompt(checkpoint),
    )


# ---- the run --------------------------------------------------------------------------------------------------
def clip_image_processor():
    """The authors' transformers 4.37 CLIPImageProcessor resized with PIL; transformers 5 keeps that as the PIL
    backend (its default CLIPImageProcessor resizes with torchvision, up to 1 level away)."""
    try:
        from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
    except ImportError:
        from transformers import CLIPImageProcessor as CLIPImageProcessorPil
    return CLIPImageProcessorPil()


def clip_tokens(nets: Networks, crop512: np.ndarray) -> torch.Tensor:
    from PIL import Image

    pixels = clip_image_processor()(images=Image.fromarray(crop512), return_tensors="pt").pixel_values
    return nets.image2token(nets.vision(pixels).last_hidden_state)


def identity_tokens(nets: Networks, crop256: np.ndarray) -> torch.Tensor:
    """Step 6: iresnet100's layer-4 map of the 256 crop resized to 128 (bilinear): 64 tokens of 512 -> ID2Token."""
    x = F.interpolate(signed(crop256), [128, 128], mode="bilinear")
    features = nets.arcface.feature_map(x).flatten(2).transpose(1, 2)
    return nets.id2token(features)


NOISE_SCALES = ("authors", "comfyui")


def sample(
    nets: Networks,
    control: torch.Tensor,
    unet_ctx: torch.Tensor,
    cnet_ctx: torch.Tensor,
    steps: int,
    noise_scale: str = "authors",
):
    """Step 9: Euler from SD1.5's scheduler config, CFG 5 over the batch [negative, positive] for the UNet and the
    ControlNet (the empty prompt as both negatives, the control image duplicated), torch.manual_seed(0) noise.

    noise_scale "authors": the initial latent is the noise times diffusers' init_noise_sigma, which for this
    config's "linspace" spacing is sigma_max itself; "comfyui": times sqrt(1 + sigma_max^2), as ComfyUI's
    KSampler scales the noise for a full denoise (the one difference of the sampler, docs/FACE_ADAPTER.md)."""
    from diffusers import EulerDiscreteScheduler

    scheduler = EulerDiscreteScheduler(**SD15_SCHEDULER)
    scheduler.set_timesteps(steps)
    sigma_max = float(scheduler.sigmas.max())
    scale = {"authors": float(scheduler.init_noise_sigma), "comfyui": (sigma_max**2 + 1) ** 0.5}[noise_scale]
    latents = torch.randn((1, 4, 64, 64), generator=torch.manual_seed(0)) * scale
    empty = nets.empty_prompt
    unet_batch, cnet_batch = torch.cat([empty, unet_ctx]), torch.cat([empty, cnet_ctx])
    hint = torch.cat([control, control])
    for t in scheduler.timesteps:
        x = scheduler.scale_model_input(torch.cat([latents, latents]), t)
        down, mid = nets.controlnet(
            x, t, encoder_hidden_states=cnet_batch, controlnet_cond=hint, conditioning_scale=1.0, return_dict=False
        )
        eps = nets.unet(
            x,
            t,
            encoder_hidden_states=unet_batch,
            down_block_additional_residuals=down,
            mid_block_additional_residual=mid,
        ).sample
        uncond, cond = eps.chunk(2)
        latents = scheduler.step(uncond + CFG * (cond - uncond), t, latents).prev_sample
    return latents


def decode(nets: Networks, latents: torch.Tensor) -> torch.Tensor:
    """VAE decode (latents / 0.18215), the pipeline's PIL image (rounded to uint8), back to [-1,1]."""
    image = nets.vae_decoder.decode(latents / SD_VAE_SCALE).sample
    image = (image / 2 + 0.5).clamp(0, 1)
    as_uint8 = (image[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    return signed(as_uint8)


@dataclass
class Result:
    blended: np.ndarray  # (512,512,3) uint8, as infer.py saves it
    control: torch.Tensor  # (1,3,512,512) in [-1,1]
    mask: torch.Tensor  # (1,1,512,512)
    generated: torch.Tensor  # (1,3,512,512) in [-1,1], the decoded image before the blend


@torch.no_grad()
def run(
    nets: Networks,
    detector,
    source_rgb: np.ndarray,
    driver_rgb: np.ndarray,
    mode: str,
    steps: int,
    recombine: bool = True,
    noise_scale: str = "authors",
) -> Result:
    """infer.py for one pair: mode "reenactment" (source identity and look, driver motion) or "swap" (source
    identity into the target photo). recombine=False leaves the driver's own identity coefficients (for showing
    that the comparison sees one changed step)."""
    src, drv = crop_chain(detector, source_rgb), crop_chain(detector, driver_rgb)
    src512, drv512 = signed(src.crop512), signed(drv.crop512)
    c_src, c_drv = nets.d3dfr(signed(src.crop256)), nets.d3dfr(signed(drv.crop256))
    if recombine:
        c_drv[:, :80] = c_src[:, :80]
    pts70 = draw_70(nets.bfm.lm68(c_drv), c_drv[:, 257:], drv.warp256)
    if mode == "reenactment":
        mask = (nets.seg(torch.cat([src512, pts70], 1)) > 0.5).float()
        base, attributes_from = src512, src.crop512
    elif mode == "swap":
        logits = nets.bisenet(drv512)[0]
        labels = torch.argmax(F.interpolate(logits, [512, 512], mode="bilinear"), dim=1, keepdim=True)
        mask = swap_mask(labels)
        base, attributes_from = drv512, drv.crop512
    else:
        raise ValueError(mode)
    control = pts70 * mask + base * (1 - mask)
    unet_ctx, cnet_ctx = identity_tokens(nets, src.crop256), clip_tokens(nets, attributes_from)
    latents = sample(nets, control, unet_ctx, cnet_ctx, steps, noise_scale)
    weight = blend_weight(mask)
    generated = decode(nets, latents)
    result = generated * weight + base * (1 - weight)
    blended = (result[0] * 127.5 + 128).permute(1, 2, 0).numpy().astype(np.uint8)
    return Result(blended, control, mask, generated)
