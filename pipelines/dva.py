"""Diffusion Video Autoencoders: DDIM inversion/generation and the classifier edit, in plain PyTorch.

Conventions (as in the authors' code):
- linear beta schedule 1e-4..0.02 over 1000 steps in float64; a respaced schedule keeps a subset of
  the original timesteps and recomputes its betas from the kept cumulative alphas;
- the noise predictor is called as `model(x, t, z_face)` with t the ORIGINAL timestep index
  (int64, e.g. 800), never the respaced index;
- inversion (`ddim_invert`) stops one step early as the authors' loop does: T-1 model calls;
  generation (`ddim_generate`) makes T calls; both use eta=0 and clip the predicted x0 to [-1,1].

Long loops report through `callback(done, total)` after every model call; raising from the
callback (e.g. ComfyUI's interrupt) cancels the loop. Video frames are processed in chunks.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from typing import Callable, Iterator, Literal, Protocol

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "NUM_TRAIN_TIMESTEPS",
    "CELEBA_ATTRIBUTES",
    "linear_betas",
    "ddim_stride_timesteps",
    "evenly_spaced_timesteps",
    "respace_timesteps",
    "DDIMSchedule",
    "ddim_invert",
    "ddim_generate",
    "ddim_step",
    "PRECISIONS",
    "with_precision",
    "Solver",
    "SOLVERS",
    "get_solver",
    "invert_frames",
    "generate_frames",
    "average_identity",
    "attribute_index",
    "normalize_identity",
    "denormalize_identity",
    "attribute_direction",
    "classifier_edit",
    "l2_normalize",
    "DVALatent",
    "encode_video",
    "decode_video",
    "frames_per_chunk",
    "stream_edit_video",
]

logger = logging.getLogger(__name__)

NUM_TRAIN_TIMESTEPS = 1000
RespacingRule = Literal["auto", "ddim", "even"]
ProgressCallback = Callable[[int, int], None]

# CelebA attribute order of CelebAttrDataset.id_to_cls (the classifier's 40 outputs).
CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow",
    "Arched_Eyebrows",
    "Attractive",
    "Bags_Under_Eyes",
    "Bald",
    "Bangs",
    "Big_Lips",
    "Big_Nose",
    "Black_Hair",
    "Blond_Hair",
    "Blurry",
    "Brown_Hair",
    "Bushy_Eyebrows",
    "Chubby",
    "Double_Chin",
    "Eyeglasses",
    "Goatee",
    "Gray_Hair",
    "Heavy_Makeup",
    "High_Cheekbones",
    "Male",
    "Mouth_Slightly_Open",
    "Mustache",
    "Narrow_Eyes",
    "No_Beard",
    "Oval_Face",
    "Pale_Skin",
    "Pointy_Nose",
    "Receding_Hairline",
    "Rosy_Cheeks",
    "Sideburns",
    "Smiling",
    "Straight_Hair",
    "Wavy_Hair",
    "Wearing_Earrings",
    "Wearing_Hat",
    "Wearing_Lipstick",
    "Wearing_Necklace",
    "Wearing_Necktie",
    "Young",
)


class NoisePredictor(Protocol):
    def __call__(self, x: torch.Tensor, t: torch.Tensor, z_face: torch.Tensor) -> torch.Tensor: ...


PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


class AutocastPredictor(torch.nn.Module):
    """The noise predictor under torch.autocast (the authors run it under fp16 autocast); eps comes back
    in float32, so the schedule and x0 arithmetic stay in float32/float64."""

    def __init__(self, model: NoisePredictor, dtype: torch.dtype) -> None:
        super().__init__()
        self.model = model
        self.dtype = dtype

    def forward(self, x: torch.Tensor, t: torch.Tensor, z_face: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, dtype=self.dtype):
            eps = self.model(x, t, z_face)
        return eps.float()


def with_precision(model: NoisePredictor, precision: str = "fp32") -> NoisePredictor:
    """`model` itself for fp32, else wrapped in AutocastPredictor with fp16 or bf16."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    dtype = PRECISIONS[precision]
    return model if dtype is None else AutocastPredictor(model, dtype)


# ----------------------------------------------------------------------------------------------
# Schedules


def linear_betas(num_timesteps: int = NUM_TRAIN_TIMESTEPS) -> np.ndarray:
    """float64 linear betas 1e-4..0.02, scaled to keep the same total noise for other lengths."""
    scale = 1000 / num_timesteps
    return np.linspace(scale * 0.0001, scale * 0.02, num_timesteps, dtype=np.float64)


def ddim_stride_timesteps(steps: int, num_timesteps: int = NUM_TRAIN_TIMESTEPS) -> list[int]:
    """The authors' "ddimN" rule: range(0, T, i) for the first integer stride i giving exactly N steps.

    Works for e.g. 5, 20, 30, 100, 1000 steps; raises ValueError when no integer stride fits (45, 600).
    """
    for stride in range(1, num_timesteps):
        if len(range(0, num_timesteps, stride)) == steps:
            return list(range(0, num_timesteps, stride))
    raise ValueError(f"cannot create exactly {steps} DDIM steps from {num_timesteps} with an integer stride")


def evenly_spaced_timesteps(steps: int, num_timesteps: int = NUM_TRAIN_TIMESTEPS) -> list[int]:
    """Any step count: round(k * (T-1) / (N-1)) for k = 0..N-1, so 0 and T-1 are both kept.

    This is the authors' non-DDIM section rule with one section (`space_timesteps(T, [N])`).
    """
    if not 1 <= steps <= num_timesteps:
        raise ValueError(f"steps must be in 1..{num_timesteps}, got {steps}")
    if steps == 1:
        return [0]
    stride = (num_timesteps - 1) / (steps - 1)
    return sorted({round(k * stride) for k in range(steps)})


def respace_timesteps(steps: int, rule: RespacingRule = "auto", num_timesteps: int = NUM_TRAIN_TIMESTEPS) -> list[int]:
    """Kept original timesteps, ascending. rule "ddim": the authors' rule (may raise);
    "even": `evenly_spaced_timesteps`; "auto": the authors' rule when it fits, else evenly spaced."""
    if rule == "ddim":
        return ddim_stride_timesteps(steps, num_timesteps)
    if rule == "even":
        return evenly_spaced_timesteps(steps, num_timesteps)
    if rule != "auto":
        raise ValueError(f"unknown respacing rule {rule!r}")
    try:
        return ddim_stride_timesteps(steps, num_timesteps)
    except ValueError:
        logger.info("no integer DDIM stride gives %d steps; using evenly spaced timesteps", steps)
        return evenly_spaced_timesteps(steps, num_timesteps)


@dataclass(frozen=True)
class DDIMSchedule:
    """A respaced schedule: kept original timesteps and their float64 cumulative alphas."""

    timestep_map: tuple[int, ...]
    alphas_cumprod: np.ndarray

    @classmethod
    def from_timesteps(cls, timesteps: list[int], betas: np.ndarray | None = None) -> "DDIMSchedule":
        base_cumprod = np.cumprod(1.0 - (linear_betas() if betas is None else betas))
        kept = sorted(set(int(t) for t in timesteps))
        previous = np.concatenate([[1.0], base_cumprod[kept][:-1]])
        respaced_betas = 1.0 - base_cumprod[kept] / previous
        return cls(tuple(kept), np.cumprod(1.0 - respaced_betas))

    @classmethod
    def from_steps(cls, steps: int, rule: RespacingRule = "auto") -> "DDIMSchedule":
        return cls.from_timesteps(respace_timesteps(steps, rule))

    def __len__(self) -> int:
        return len(self.timestep_map)

    @property
    def alphas_cumprod_prev(self) -> np.ndarray:
        return np.append(1.0, self.alphas_cumprod[:-1])

    @property
    def alphas_cumprod_next(self) -> np.ndarray:
        return np.append(self.alphas_cumprod[1:], 0.0)

    def timestep_tensor(self) -> torch.Tensor:
        return torch.tensor(self.timestep_map, dtype=torch.int64)


# ----------------------------------------------------------------------------------------------
# DDIM loops (eta = 0)


def _scalar(value: float, like: torch.Tensor) -> torch.Tensor:
    # float64 schedule value rounded to float32, as the authors gather it per step
    return torch.tensor(value, dtype=torch.float32, device=like.device).to(like.dtype)


def _denoise(model, x, t_orig: int, z_face, abar: float, clip: bool):
    """One model call: (clipped x0 prediction, eps re-derived from it)."""
    t = torch.full((x.shape[0],), t_orig, dtype=torch.int64, device=x.device)
    eps = model(x, t, z_face)
    recip = _scalar(math.sqrt(1.0 / abar), x)
    recipm1 = _scalar(math.sqrt(1.0 / abar - 1.0), x)
    x0 = recip * x - recipm1 * eps.to(x.dtype)
    if clip:
        x0 = x0.clamp(-1, 1)
    return x0, (recip * x - x0) / recipm1


def _move_to_level(x0: torch.Tensor, eps: torch.Tensor, abar_target: float) -> torch.Tensor:
    return x0 * _scalar(math.sqrt(abar_target), x0) + _scalar(math.sqrt(1.0 - abar_target), x0) * eps


def _per_sample(values, like: torch.Tensor) -> torch.Tensor:
    # float64 schedule values rounded to float32 per sample, shaped to broadcast over (B,C,H,W)
    return (
        torch.tensor(np.asarray(values, dtype=np.float64), dtype=torch.float32, device=like.device)
        .to(like.dtype)
        .view(-1, *([1] * (like.dim() - 1)))
    )


def ddim_step(
    model: NoisePredictor,
    x: torch.Tensor,
    indices: list[int],
    z_face: torch.Tensor,
    schedule: DDIMSchedule,
    clip_denoised: bool = True,
) -> torch.Tensor:
    """One DDIM generation step (eta=0) for each sample b from respaced index indices[b] to the level
    below, in one model call: the authors' batched `ddim_sample` with a vector t. Differentiable."""
    abar = schedule.alphas_cumprod[indices]
    abar_prev = schedule.alphas_cumprod_prev[indices]
    t = torch.tensor([schedule.timestep_map[i] for i in indices], dtype=torch.int64, device=x.device)
    eps = model(x, t, z_face).to(x.dtype)
    recip, recipm1 = _per_sample(np.sqrt(1.0 / abar), x), _per_sample(np.sqrt(1.0 / abar - 1.0), x)
    x0 = recip * x - recipm1 * eps
    if clip_denoised:
        x0 = x0.clamp(-1, 1)
    eps = (recip * x - x0) / recipm1
    return x0 * _per_sample(np.sqrt(abar_prev), x) + _per_sample(np.sqrt(1.0 - abar_prev), x) * eps


@torch.no_grad()
def ddim_invert(
    model: NoisePredictor,
    x0: torch.Tensor,
    z_face: torch.Tensor,
    schedule: DDIMSchedule,
    clip_denoised: bool = True,
    callback: ProgressCallback | None = None,
) -> torch.Tensor:
    """Deterministic DDIM inversion of images x0 (B,3,H,W) in [-1,1] to x_T; T-1 model calls."""
    x = x0
    abar, abar_next = schedule.alphas_cumprod, schedule.alphas_cumprod_next
    total = len(schedule) - 1
    for i in range(total):  # the authors' loop skips the last index
        pred_x0, eps = _denoise(model, x, schedule.timestep_map[i], z_face, abar[i], clip_denoised)
        x = _move_to_level(pred_x0, eps, abar_next[i])
        if callback is not None:
            callback(i + 1, total)
    return x


@torch.no_grad()
def ddim_generate(
    model: NoisePredictor,
    x_T: torch.Tensor,
    z_face: torch.Tensor,
    schedule: DDIMSchedule,
    clip_denoised: bool = True,
    callback: ProgressCallback | None = None,
) -> torch.Tensor:
    """Deterministic DDIM generation from x_T; T model calls. Returns x0 in [-1,1] (B,3,H,W)."""
    x = x_T
    abar, abar_prev = schedule.alphas_cumprod, schedule.alphas_cumprod_prev
    total = len(schedule)
    for done, i in enumerate(reversed(range(total)), start=1):
        pred_x0, eps = _denoise(model, x, schedule.timestep_map[i], z_face, abar[i], clip_denoised)
        x = _move_to_level(pred_x0, eps, abar_prev[i])
        if callback is not None:
            callback(done, total)
    return x


def _chunked(
    loop: Callable[..., torch.Tensor],
    calls_per_chunk: int,
    model: NoisePredictor,
    x: torch.Tensor,
    z_face: torch.Tensor,
    schedule: DDIMSchedule,
    chunk_size: int,
    device: torch.device | str | None,
    callback: ProgressCallback | None,
) -> torch.Tensor:
    if x.shape[0] != z_face.shape[0]:
        raise ValueError(f"{x.shape[0]} frames but {z_face.shape[0]} face codes")
    starts = range(0, x.shape[0], max(1, chunk_size))
    total = calls_per_chunk * len(starts)
    device = x.device if device is None else torch.device(device)
    outputs = []
    for n, start in enumerate(starts):
        stop = start + chunk_size

        def report(done: int, _total: int, offset: int = n * calls_per_chunk) -> None:
            if callback is not None:
                callback(offset + done, total)

        chunk = loop(model, x[start:stop].to(device), z_face[start:stop].to(device), schedule, callback=report)
        outputs.append(chunk.to(x.device))
    return torch.cat(outputs, dim=0)


@dataclass(frozen=True)
class Solver:
    """A deterministic sampler: invert(model, x0, z_face, schedule, callback=) -> x_T with T-1 model
    calls, generate(model, x_T, z_face, schedule, callback=) -> x0 with T calls."""

    invert: Callable[..., torch.Tensor]
    generate: Callable[..., torch.Tensor]


# name -> solver, taken by encode, decode and streaming; a new solver is one entry (see dva_solvers)
SOLVERS: dict[str, Solver] = {"ddim": Solver(ddim_invert, ddim_generate)}


def get_solver(name: str) -> Solver:
    if name not in SOLVERS:
        raise ValueError(f"unknown solver {name!r}; choose one of {', '.join(SOLVERS)}")
    return SOLVERS[name]


def invert_frames(
    model: NoisePredictor,
    frames: torch.Tensor,
    z_face: torch.Tensor,
    schedule: DDIMSchedule,
    chunk_size: int = 4,
    device: torch.device | str | None = None,
    callback: ProgressCallback | None = None,
    solver: str = "ddim",
) -> torch.Tensor:
    """The solver's inversion over N frames (N,3,H,W) in [-1,1] with z_face (N,512), `chunk_size` at a
    time on `device` (default: the frames' device). Returns x_T (N,3,H,W) on the frames' device."""
    calls = len(schedule) - 1
    return _chunked(get_solver(solver).invert, calls, model, frames, z_face, schedule, chunk_size, device, callback)


def generate_frames(
    model: NoisePredictor,
    x_T: torch.Tensor,
    z_face: torch.Tensor,
    schedule: DDIMSchedule,
    chunk_size: int = 4,
    device: torch.device | str | None = None,
    callback: ProgressCallback | None = None,
    solver: str = "ddim",
) -> torch.Tensor:
    """The solver's generation over N noise maps in chunks. Returns frames (N,3,H,W) in [-1,1]."""
    return _chunked(
        get_solver(solver).generate, len(schedule), model, x_T, z_face, schedule, chunk_size, device, callback
    )


# ----------------------------------------------------------------------------------------------
# Identity code and classifier edit


def l2_normalize(z: torch.Tensor) -> torch.Tensor:
    """z / ||z||_2 along dim 1."""
    return z / torch.norm(z, 2, 1, True)


def average_identity(z_id_frames: torch.Tensor) -> torch.Tensor:
    """Video identity code: mean over frames (1,512), not re-normalised (as the authors use it)."""
    return z_id_frames.mean(dim=0, keepdim=True)


def attribute_index(attribute: str | int) -> int:
    """Index into CELEBA_ATTRIBUTES of an attribute name (case-insensitive) or a checked index."""
    if isinstance(attribute, int):
        if not 0 <= attribute < len(CELEBA_ATTRIBUTES):
            raise ValueError(f"attribute index {attribute} is outside 0..{len(CELEBA_ATTRIBUTES) - 1}")
        return attribute
    lookup = {name.lower(): i for i, name in enumerate(CELEBA_ATTRIBUTES)}
    if attribute.lower() not in lookup:
        raise ValueError(f"unknown CelebA attribute {attribute!r}; choose one of {', '.join(CELEBA_ATTRIBUTES)}")
    return lookup[attribute.lower()]


def normalize_identity(z: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return (z - mean) / std


def denormalize_identity(z: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return z * std + mean


def attribute_direction(classifier_weight: torch.Tensor, cls_id: int | torch.Tensor) -> torch.Tensor:
    """Unit-length row cls_id of the (40,512) classifier weight, shape (1,512)."""
    return F.normalize(classifier_weight[int(cls_id)][None, :], dim=1)


def classifier_edit(
    z_id_avg: torch.Tensor,
    classifier_weight: torch.Tensor,
    cls_id: int | str | torch.Tensor,
    scale: float | torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
    normalize: bool = True,
) -> torch.Tensor:
    """Edited identity code (1,512), l2-normalised.

    normalize=True (the authors' default): l2norm(denorm(norm(z) + scale*sqrt(512)*unit(w[cls_id]))).
    normalize=False: l2norm(z + scale*sqrt(512)*w[cls_id]). A negative scale removes the attribute
    (e.g. -No_Beard adds a beard).
    """
    index = attribute_index(cls_id) if isinstance(cls_id, str) else int(cls_id)
    step = float(scale) * math.sqrt(z_id_avg.shape[1])
    if not normalize:
        return l2_normalize(z_id_avg + step * classifier_weight[index][None, :])
    edited = normalize_identity(z_id_avg, mean, std) + step * attribute_direction(classifier_weight, index)
    return l2_normalize(denormalize_identity(edited, mean, std))


# ----------------------------------------------------------------------------------------------
# Whole-video encode / decode


@dataclass
class DVALatent:
    """What DVA keeps per video. Frames are the 256 aligned crops in [-1,1]."""

    z_id: torch.Tensor  # (N,512) per-frame identity codes, l2-normalised
    z_id_avg: torch.Tensor  # (1,512) their mean (not re-normalised)
    z_lnd: torch.Tensor  # (N,102) landmark codes
    x_T: torch.Tensor  # (N,3,H,W) DDIM-inverted noise maps
    masks: torch.Tensor  # (N,1,H,W) float {0,1} face masks (video mode)
    timestep_map: tuple[int, ...]  # the schedule used for the inversion
    crops: torch.Tensor | None = None  # (N,H,W,3) [0,1] the aligned crops that were encoded
    face_crop: object | None = None  # face.types.FaceCrop of those crops, for paste-back
    z_id_edit: torch.Tensor | None = None  # (1,512) edited identity; None = no edit (decode the average)
    edit_note: str = ""  # what edit produced z_id_edit, for reports
    solver: str = "ddim"  # the solver that inverted x_T; decoding with the same one reconstructs best
    inverted_with: str = "average"  # identity code x_T was inverted with: "average" or "per-frame"

    def __len__(self) -> int:
        return int(self.x_T.shape[0])

    def current_code(self) -> torch.Tensor:
        """(1,512) the code an edit starts from: the last edit's, else the video average."""
        return self.z_id_avg if self.z_id_edit is None else self.z_id_edit

    def with_edit(self, z_id_edit: torch.Tensor, note: str) -> "DVALatent":
        """A copy that decodes with identity `z_id_edit`; the note is appended to earlier edits' notes
        (tensors are shared, not copied)."""
        return replace(self, z_id_edit=z_id_edit, edit_note=f"{self.edit_note} + {note}" if self.edit_note else note)

    def without_edit(self) -> "DVALatent":
        """A copy that decodes with the video's own code again."""
        return replace(self, z_id_edit=None, edit_note="")

    def identity_codes(self, identity: str = "current") -> torch.Tensor:
        """Codes to decode with: "current" (the edit, else the codes x_T was inverted with), "average"
        (1,512) or "per-frame" (N,512, the authors' reconstruction-metrics path)."""
        if identity == "current":
            if self.z_id_edit is not None:
                return self.z_id_edit
            identity = self.inverted_with
        if identity == "average":
            return self.z_id_avg
        if identity == "per-frame":
            return self.z_id
        raise ValueError(f"unknown identity {identity!r}; choose current, average or per-frame")


def _encoder_in_chunks(fn: Callable[[torch.Tensor], torch.Tensor], frames, chunk_size, device) -> torch.Tensor:
    out = [fn(frames[i : i + chunk_size].to(device)).to(frames.device) for i in range(0, len(frames), chunk_size)]
    return torch.cat(out, dim=0)


@torch.no_grad()
def encode_video(
    unet: NoisePredictor,
    encoder,
    frames: torch.Tensor,
    schedule: DDIMSchedule,
    chunk_size: int = 4,
    device: torch.device | str | None = None,
    callback: ProgressCallback | None = None,
    identity: str = "average",
    solver: str = "ddim",
) -> DVALatent:
    """Encode aligned frames (N,3,H,W) in [-1,1]: identity, landmarks, masks and x_T.

    identity "average": x_T is inverted with z_face built from the averaged identity, as the authors'
    edit scripts do; "per-frame": with each frame's own code, as their metrics.py does.
    `encoder` is a DVAFaceEncoder.
    """
    device = frames.device if device is None else torch.device(device)
    step = max(1, chunk_size)
    z_id = _encoder_in_chunks(encoder.id_forward, frames, step, device)
    z_lnd = _encoder_in_chunks(encoder.landmarks, frames, step, device)
    masks = _encoder_in_chunks(lambda x: encoder.face_mask(x, for_video=True), frames, step, device)
    z_id_avg = average_identity(z_id)
    latent = DVALatent(
        z_id, z_id_avg, z_lnd, z_id_avg, masks, schedule.timestep_map, solver=solver, inverted_with=identity
    )
    z_face = _face_codes(encoder, latent.identity_codes(identity), z_lnd, device)
    latent.x_T = invert_frames(unet, frames, z_face, schedule, chunk_size, device, callback, solver)
    return latent


def _face_codes(encoder, z_id: torch.Tensor, z_lnd: torch.Tensor, device) -> torch.Tensor:
    """z_face (N,512) for one shared code (1,512) or per-frame codes (N,512)."""
    z_id = z_id.to(device).expand(z_lnd.shape[0], -1)
    return encoder.face_code(z_id, z_lnd.to(device)).to(z_lnd.device)


@torch.no_grad()
def decode_video(
    unet: NoisePredictor,
    encoder,
    latent: DVALatent,
    schedule: DDIMSchedule,
    z_id: torch.Tensor | None = None,
    chunk_size: int = 4,
    device: torch.device | str | None = None,
    callback: ProgressCallback | None = None,
    solver: str | None = None,
) -> torch.Tensor:
    """Generate frames (N,3,H,W) in [0,1] from latent.x_T with identity z_id, (1,512) or per-frame
    (N,512); default: the codes x_T was inverted with (see DVALatent.identity_codes).

    Use the same schedule and solver (default: latent.solver, the one that inverted x_T) as the
    inversion for a faithful reconstruction.
    """
    device = latent.x_T.device if device is None else torch.device(device)
    identity = latent.identity_codes(latent.inverted_with) if z_id is None else z_id
    z_face = _face_codes(encoder, identity, latent.z_lnd, device)
    frames = generate_frames(unet, latent.x_T, z_face, schedule, chunk_size, device, callback, solver or latent.solver)
    return (frames + 1) / 2


def frames_per_chunk(
    free_bytes: int, model_channels: int = 128, image_size: int = 256, limit: int = 64, precision: str = "fp32"
) -> int:
    """How many frames one UNet call may take given `free_bytes` of device memory.

    About 300 MB of float32 activations per 256-px frame for the released 128-channel UNet (skip
    features of the 256 and 128 px levels dominate), scaled by width and area, halved under fp16/bf16
    autocast; half the free memory is left as headroom.
    """
    per_frame = 300e6 * (model_channels / 128) * (image_size / 256) ** 2
    per_frame *= 0.5 if PRECISIONS.get(precision) is not None else 1.0
    return int(max(1, min(limit, (free_bytes * 0.5) // per_frame)))


# ----------------------------------------------------------------------------------------------
# Streaming edit: memory independent of video length


@torch.no_grad()
def stream_edit_video(
    unet: NoisePredictor,
    encoder,
    read_frames: Callable[[int, int], torch.Tensor],
    num_frames: int,
    schedule: DDIMSchedule,
    edit: Callable[[torch.Tensor], torch.Tensor] | None = None,
    chunk_size: int = 4,
    device: torch.device | str = "cpu",
    callback: ProgressCallback | None = None,
    solver: str = "ddim",
) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """Encode, edit and decode a video without holding it: yields (start, frames [0,1], masks) per chunk.

    read_frames(start, stop) returns aligned crops (n,3,H,W) in [-1,1]. Pass 1 reads every chunk for
    the identity codes only ((N,512) kept); pass 2 reads each chunk again, inverts it with the average
    identity and generates it with edit(average) (default: the average, a reconstruction). Peak memory
    is that of one chunk plus the models, whatever N is.
    """
    device = torch.device(device)
    step = max(1, chunk_size)
    starts = list(range(0, num_frames, step))
    z_id = torch.cat([encoder.id_forward(read_frames(s, min(s + step, num_frames)).to(device)).cpu() for s in starts])
    z_avg = average_identity(z_id)
    z_target = z_avg if edit is None else edit(z_avg)
    calls = 2 * len(schedule) - 1
    for n, start in enumerate(starts):
        frames = read_frames(start, min(start + step, num_frames)).to(device)
        z_lnd = encoder.landmarks(frames)
        mask = encoder.face_mask(frames, for_video=True)

        def report(done: int, _total: int, offset: int = n * calls) -> None:
            if callback is not None:
                callback(offset + done, calls * len(starts))

        sampler = get_solver(solver)
        x_T = sampler.invert(unet, frames, _face_codes(encoder, z_avg, z_lnd, device), schedule, callback=report)
        shifted = lambda done, total, base=len(schedule) - 1: report(base + done, total)  # noqa: E731
        out = sampler.generate(unet, x_T, _face_codes(encoder, z_target, z_lnd, device), schedule, callback=shifted)
        yield start, ((out + 1) / 2).cpu(), mask.cpu()


from . import dva_solvers as _dva_solvers  # noqa: E402  (registers the solvers defined there)

SOLVERS["dpm++2m"] = Solver(_dva_solvers.dpmpp_invert, _dva_solvers.dpmpp_generate)
