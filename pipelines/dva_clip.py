"""DVA text-driven edit as the authors run it (editing_CLIP.py, losses/clip_loss.py).

1. Frame 0 is inverted with its own identity code z0 and landmark code through `steps` DDIM levels
   (5: timesteps 0, 200, 400, 600, 800). Once, without gradients, the DDIM reconstruction from that
   x_T with z0 is recorded at every level: the trajectory r_S, r_{S-1}, ..., r_0, r_clean.
2. Every iteration takes ONE batched DDIM step from each trajectory level r_S..r_0 (step indices
   S-1..0) with the code l2norm(edit), giving S one-step outputs o, and takes an Adam step on
       clip_weight * -log((2 - d) / 2)     d = StyleGAN-NADA directional distance between the image
                                           direction CLIP(o) - CLIP(r_{k-1}) and the text direction
     + id_weight   * (1 - <l2norm(edit), z0>)       (a cosine on the codes, no network)
     + l1_weight   * mean |r_{k-1}*m - o*m|         (m: the image-mode face mask of frame 0)
   The text direction is the mean over the 79 ImageNet prompt templates of the per-template
   normalised target minus source text features, normalised.
3. The code the edit starts from (the video average, or an earlier edit) becomes
   l2norm(code + scale * (edit - z0)).

At initialisation the one-step outputs equal the trajectory, so the L1 and identity terms are zero.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from .dva import (
    PRECISIONS,
    DDIMSchedule,
    DVALatent,
    _denoise,
    _move_to_level,
    ddim_invert,
    ddim_step,
    l2_normalize,
)

__all__ = [
    "CLIP_PRESETS",
    "ClipEditSettings",
    "TextDirection",
    "clip_direction_edit",
    "clip_edit_backward",
    "clip_edit_losses",
    "levels_per_pass",
    "imagenet_templates",
    "prepare_clip_edit",
    "reconstruction_trajectory",
]

logger = logging.getLogger(__name__)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# editing_CLIP.py's argparse defaults, and the README's example command
CLIP_PRESETS = {
    "script defaults (id 5, scale 1.0)": dict(clip_weight=3.0, id_weight=5.0, l1_weight=5.0, scale=1.0),
    "README example (id 1, scale 0.5)": dict(clip_weight=3.0, id_weight=1.0, l1_weight=5.0, scale=0.5),
}


@dataclass
class ClipEditSettings:
    target_text: str
    source_text: str = "face"
    iterations: int = 2000
    lr: float = 0.002
    steps: int = 5
    scale: float = 1.0
    clip_weight: float = 3.0
    id_weight: float = 5.0
    l1_weight: float = 5.0
    #: trajectory levels per UNet pass; 0: all in one batch, as the authors (see clip_edit_backward)
    levels_per_pass: int = 0


def imagenet_templates() -> list[str]:
    """StyleGAN-NADA's 79 `imagenet_templates`: OpenAI's 80 ImageNet prompts without 'a photo of many {}.'."""
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

    return [t("{}") for t in OPENAI_IMAGENET_TEMPLATES if t("{}") != "a photo of many {}."]


class TextDirection:
    """CLIP image embeddings and the template-averaged text direction of the directional loss."""

    def __init__(self, clip_model, source_text: str, target_text: str):
        self.model = clip_model
        with torch.no_grad():
            source, target = self.text_features(source_text), self.text_features(target_text)
        self.text_direction = F.normalize((target - source).mean(0, keepdim=True), dim=-1)
        size = clip_model.visual.image_size
        self.size = tuple(size) if isinstance(size, (tuple, list)) else (size, size)

    def text_features(self, text: str) -> torch.Tensor:
        """(79,D) unit text features of `text` in every template."""
        import open_clip

        device = next(self.model.parameters()).device
        tokens = open_clip.tokenize([t.format(text) for t in imagenet_templates()]).to(device)
        return F.normalize(self.model.encode_text(tokens).float(), dim=-1)

    def image_embedding(self, x: torch.Tensor) -> torch.Tensor:
        """x (B,3,H,W) in [-1,1] -> unit CLIP image embeddings."""
        x = F.interpolate((x + 1) / 2, self.size, mode="bicubic", align_corners=False)
        mean = torch.tensor(CLIP_MEAN, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(CLIP_STD, device=x.device).view(1, 3, 1, 1)
        return F.normalize(self.model.encode_image((x - mean) / std).float(), dim=-1)

    def directional_distances(
        self, source_embedding: torch.Tensor, target: torch.Tensor, unmoved: bool | None = None
    ) -> torch.Tensor:
        """(B,) 1 - cos(unit image direction, text direction) per image. `unmoved` (their fallback to the
        target embedding when no image has moved) is decided over these images unless given."""
        target_embedding = self.image_embedding(target)
        edit = target_embedding - source_embedding
        edit = edit / (edit.norm(dim=-1, keepdim=True) + 1e-7)
        if bool((edit == 0).all()) if unmoved is None else unmoved:
            edit = target_embedding
        return 1 - F.cosine_similarity(edit, self.text_direction, dim=1)

    def directional_distance(self, source_embedding: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """StyleGAN-NADA's clip_directional_loss: the mean of :meth:`directional_distances`."""
        return self.directional_distances(source_embedding, target).mean()

    def loss(self, source_embedding: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return -torch.log((2 - self.directional_distance(source_embedding, target)) / 2)


def make_autograd_ready(module: torch.nn.Module) -> None:
    """Freeze the parameters and replace inference-mode tensors by ordinary copies (ComfyUI runs nodes
    under torch.inference_mode, whose tensors autograd refuses to save)."""
    for sub in module.modules():
        for name, param in list(sub._parameters.items()):
            if param is not None and (param.is_inference() or param.requires_grad):
                sub._parameters[name] = torch.nn.Parameter(
                    param.detach().clone() if param.is_inference() else param.detach(), requires_grad=False
                )
        for name, buffer in list(sub._buffers.items()):
            if buffer is not None and buffer.is_inference():
                sub._buffers[name] = buffer.clone()


@torch.no_grad()
def reconstruction_trajectory(unet, frame0: torch.Tensor, z_face: torch.Tensor, schedule: DDIMSchedule) -> torch.Tensor:
    """(S+1,3,H,W): x_T of frame0 (S-1 inversion calls), then each DDIM generation level down to the clean image."""
    x = ddim_invert(unet, frame0, z_face, schedule)
    levels = [x]
    abar, abar_prev = schedule.alphas_cumprod, schedule.alphas_cumprod_prev
    for i in reversed(range(len(schedule))):
        x0, eps = _denoise(unet, x, schedule.timestep_map[i], z_face, abar[i], True)
        x = _move_to_level(x0, eps, abar_prev[i])
        levels.append(x)
    return torch.cat(levels)


@dataclass
class ClipEditState:
    """What stays fixed over the iterations."""

    trajectory: torch.Tensor  # (S+1,3,H,W)
    source_embedding: torch.Tensor  # CLIP(trajectory[1:])
    z0: torch.Tensor  # (1,512) frame 0's own identity code
    z_lnd0: torch.Tensor  # (1,102)
    mask: torch.Tensor  # (1,1,H,W) image-mode face mask of frame 0
    direction: TextDirection
    schedule: DDIMSchedule


def clip_edit_losses(unet, encoder, state: ClipEditState, edit_code: torch.Tensor) -> dict[str, torch.Tensor]:
    """The three terms for one iteration (differentiable in edit_code) and their one-step outputs."""
    code = l2_normalize(edit_code)
    stepped = _one_step_outputs(unet, encoder, state, code, slice(None))
    target = state.trajectory[1:]
    return {
        "clip": state.direction.loss(state.source_embedding, stepped),
        "id": (1 - (code[0] * state.z0[0]).sum()),
        "l1": F.l1_loss(target * state.mask, stepped * state.mask),
        "outputs": stepped,
    }


def _one_step_outputs(unet, encoder, state: ClipEditState, code: torch.Tensor, levels: slice) -> torch.Tensor:
    """The one-step outputs of trajectory levels `levels` (indices into trajectory[:-1]) with unit `code`."""
    x = state.trajectory[:-1][levels]
    indices = list(reversed(range(len(state.schedule))))[levels]
    z_face = encoder.face_code(code, state.z_lnd0).expand(len(x), -1)
    return ddim_step(unet, x, indices, z_face, state.schedule)


def _weighted(settings: ClipEditSettings, terms: dict[str, torch.Tensor]) -> torch.Tensor:
    return settings.clip_weight * terms["clip"] + settings.id_weight * terms["id"] + settings.l1_weight * terms["l1"]


def clip_edit_backward(
    unet, encoder, state: ClipEditState, edit_code: torch.Tensor, settings: ClipEditSettings
) -> dict[str, float]:
    """One iteration: the weighted loss's gradient accumulated on edit_code; returns the terms and the total.

    With ``settings.levels_per_pass`` below the number of levels, the levels go through the UNet that many
    at a time, so the activations held for the backward pass shrink in proportion. The L1 and the CLIP
    distances are means over levels, but the CLIP term -log((2 - D) / 2) is not, so D is first computed
    without gradients and each pass backpropagates its distances weighted by 1 / (S (2 - D)): the same
    gradient as one pass, for one more forward pass.
    """
    count = len(state.trajectory) - 1
    per_pass = settings.levels_per_pass if 0 < settings.levels_per_pass < count else count
    if per_pass == count:
        terms = clip_edit_losses(unet, encoder, state, edit_code)
        total = _weighted(settings, terms)
        total.backward()
        return {"clip": float(terms["clip"]), "id": float(terms["id"]), "l1": float(terms["l1"]), "total": float(total)}
    passes = [slice(i, min(i + per_pass, count)) for i in range(0, count, per_pass)]
    source, target = state.source_embedding, state.trajectory[1:]
    with torch.no_grad():
        code = l2_normalize(edit_code)
        outputs = [_one_step_outputs(unet, encoder, state, code, part) for part in passes]
        moved = torch.cat([state.direction.image_embedding(o) - source[p] for o, p in zip(outputs, passes)])
        unmoved = bool((moved == 0).all())
        distance = torch.cat(
            [state.direction.directional_distances(source[p], o, unmoved) for o, p in zip(outputs, passes)]
        ).mean()
    clip_scale = settings.clip_weight / (count * (2 - float(distance)))
    numel = target.numel()
    identity, l1 = None, 0.0
    for part in passes:
        code = l2_normalize(edit_code)
        stepped = _one_step_outputs(unet, encoder, state, code, part)
        distances = state.direction.directional_distances(source[part], stepped, unmoved)
        l1_part = (target[part] * state.mask - stepped * state.mask).abs().sum() / numel
        loss = clip_scale * distances.sum() + settings.l1_weight * l1_part
        if identity is None:
            identity = 1 - (code[0] * state.z0[0]).sum()
            loss = loss + settings.id_weight * identity
        loss.backward()
        l1 += float(l1_part)
    clip = -float(torch.log((2 - distance) / 2))
    terms = {"clip": clip, "id": float(identity), "l1": l1}
    return {**terms, "total": settings.clip_weight * clip + settings.id_weight * terms["id"] + settings.l1_weight * l1}


def levels_per_pass(free_bytes: int, model_channels: int = 128, levels: int = 5, precision: str = "fp32") -> int:
    """How many trajectory levels one forward-and-backward pass may hold in `free_bytes`.

    About 3.9 GB a level for the released 128-channel UNet at 256 px in float32 (measured: a batch-5
    iteration peaked at 19.4 GB on the CPU), scaled by width, halved under fp16/bf16 autocast; half the
    free memory is left as headroom.
    """
    per_level = 3.9e9 * (model_channels / 128) * (0.5 if PRECISIONS.get(precision) is not None else 1.0)
    return int(max(1, min(levels, (free_bytes * 0.5) // per_level)))


def prepare_clip_edit(unet, encoder, clip_model, frame0: torch.Tensor, settings: ClipEditSettings) -> ClipEditState:
    """Frame 0's codes, mask, reconstruction trajectory and the text direction."""
    schedule = DDIMSchedule.from_steps(settings.steps)
    with torch.no_grad():
        z0 = encoder.id_forward(frame0)
        z_lnd0 = encoder.landmarks(frame0)
        mask = encoder.face_mask(frame0, for_video=False)
        trajectory = reconstruction_trajectory(unet, frame0, encoder.face_code(z0, z_lnd0), schedule)
        direction = TextDirection(clip_model, settings.source_text, settings.target_text)
        source_embedding = direction.image_embedding(trajectory[1:])
    return ClipEditState(trajectory, source_embedding, z0, z_lnd0, mask, direction, schedule)


def clip_direction_edit(
    unet,
    encoder,
    clip_model,
    frame0: torch.Tensor,
    latent: DVALatent,
    settings: ClipEditSettings,
    device: torch.device | str = "cpu",
    callback: Callable[[int, int], None] | None = None,
) -> tuple[torch.Tensor, list[float]]:
    """Edited video identity code (1,512) and the total loss per iteration.

    frame0: (1,3,256,256) aligned crop in [-1,1]; the edit moves the latent's current code (its earlier
    edit, else the video average) by scale * (optimised code - z0).
    """
    device = torch.device(device)
    for module in (unet, encoder, clip_model):
        make_autograd_ready(module)
    # clones: tensors made under ComfyUI's inference mode cannot take part in autograd
    state = prepare_clip_edit(unet, encoder, clip_model, frame0.to(device).clone(), settings)
    edit_code = torch.nn.Parameter(state.z0.clone())
    optimiser = torch.optim.Adam([edit_code], lr=settings.lr, weight_decay=0)
    losses = []
    for it in range(settings.iterations):
        optimiser.zero_grad()
        losses.append(clip_edit_backward(unet, encoder, state, edit_code, settings)["total"])
        optimiser.step()
        if callback is not None:
            callback(it + 1, settings.iterations)
    logger.info(
        "CLIP edit '%s': loss %.4f -> %.4f over %d iterations",
        settings.target_text,
        losses[0] if losses else float("nan"),
        losses[-1] if losses else float("nan"),
        settings.iterations,
    )
    delta = edit_code.detach() - state.z0
    return l2_normalize(latent.current_code().to(device) + settings.scale * delta).cpu(), losses
