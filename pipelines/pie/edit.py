"""PIE edits: the edit targets (pose offsets, named expression sliders, SH light offsets, reference groups)
and the two ways to reach them, direct latent optimisation and RigNet."""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
from torch import nn

from .embed import StepCallback, _deterministic
from .energies import PIEModels, image_loss
from .formation import TAU_KEYS, Theta, detach_theta, tau_vector, theta_distance
from .generator import synthesize


@dataclass
class DirectEditConfig:
    steps: int = 100
    lr: float = 0.01
    tau_weight: float = 10.0
    keep_weight: float = 1.0
    image_weight: float = 1.0
    recognition_weight: float = 0.1
    latent_weight: float = 0.1
    photo: float = 1.0
    landmark: float = 10.0


def regress_generated(models: PIEModels, w_plus: torch.Tensor) -> Theta:
    with torch.no_grad():
        return detach_theta(models.formation.regress(synthesize(models.generator, w_plus)))


@_deterministic
def edit_direct(models: PIEModels, w_plus: torch.Tensor, target_theta: Theta, taus: tuple[str, ...],
                config: DirectEditConfig, on_step: StepCallback | None = None) -> tuple[torch.Tensor, list[dict[str, float]]]:
    """Optimise W+ from ``w_plus`` so that the regressed theta of the generated image has ``target_theta``'s
    ``taus`` groups, keeps its other parameters (identity, the other groups, camera) and its recognition
    embedding, and renders like ``target_theta``. Returns the edited W+ and a per-step log."""
    generator, formation = models.generator, models.formation
    start = w_plus.detach()
    with torch.no_grad():
        original = synthesize(generator, start)
        theta_start = detach_theta(formation.regress(original))
        psi_start = models.recognition(original) if models.recognition is not None else None
    edited_keys = [key for tau in taus for key in TAU_KEYS[tau]]
    keep_keys = formation.other_keys(edited_keys)
    target = {**theta_start, **{key: target_theta[key].to(start) for key in edited_keys}}
    w = start.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([w], lr=config.lr)
    history = []
    for step in range(config.steps):
        image = synthesize(generator, w)
        theta = formation.regress(image)
        terms = {
            "tau": config.tau_weight * theta_distance(theta, target, edited_keys, formation.param_scale),
            "keep": config.keep_weight * theta_distance(theta, theta_start, keep_keys, formation.param_scale),
            "image": config.image_weight * image_loss(formation, image, target, config.photo, config.landmark),
            "latent": config.latent_weight * (w - start).square().flatten(1).mean(1),
        }
        if psi_start is not None and config.recognition_weight > 0:
            terms["recognition"] = config.recognition_weight * (psi_start - models.recognition(image)).square().sum(-1)
        loss = sum(t.sum() for t in terms.values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        record = {name: float(value.detach().mean()) for name, value in terms.items()}
        history.append(record)
        if on_step is not None:
            on_step(step, config.steps, record, lambda image=image: image.detach())
    return w.detach(), history


def edit_rignet(rignet: nn.Module, w_plus: torch.Tensor, target_theta: Theta, taus: tuple[str, ...]) -> torch.Tensor:
    """Apply each group's RigNet in turn with the target parameters of that group."""
    with torch.no_grad():
        for tau in taus:
            w_plus = rignet(tau, w_plus, tau_vector(target_theta, tau).to(w_plus))
    return w_plus


EXPRESSION_SLIDERS: dict[str, tuple[str, ...]] = {
    "smile": ("mouthSmile_L", "mouthSmile_R"),
    "jaw_open": ("jawOpen",),
    "blink": ("eyeBlink_L", "eyeBlink_R"),
    "brows_up": ("browInnerUp_L", "browInnerUp_R", "browOuterUp_L", "browOuterUp_R"),
}


def edited_theta(theta: Theta, exp_names: list[str], yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0,
                 expression_offsets: dict[str, float] | None = None, light_offsets: dict[str, float] | None = None,
                 reference: Theta | None = None, reference_taus: tuple[str, ...] = ()) -> Theta:
    """theta with pose offsets (degrees), named expression offsets, SH offsets, or groups from a reference."""
    out = {k: v.clone() for k, v in theta.items()}
    if reference is not None:
        for tau in reference_taus:
            for key in TAU_KEYS[tau]:
                out[key] = reference[key].to(out[key]).expand_as(out[key]).clone()
    out["angles"] = out["angles"] + torch.tensor([yaw, pitch, roll], dtype=out["angles"].dtype,
                                                 device=out["angles"].device) * (math.pi / 180)
    for name, offset in (expression_offsets or {}).items():
        if offset and not any(shape_name in exp_names for shape_name in EXPRESSION_SLIDERS[name]):
            raise ValueError(f"the expression slider '{name}' needs a face model with named expressions "
                             "(ict_facekit); the BFM's expressions are unnamed PCA components: copy the expression "
                             "from a reference face instead")
        for shape_name in EXPRESSION_SLIDERS[name]:
            if shape_name in exp_names and offset:
                index = exp_names.index(shape_name)
                out["expression"][:, index] = (out["expression"][:, index] + offset).clamp(0.0, 1.0)
    light = out["light"].view(-1, 3, 9)
    offsets = light_offsets or {}
    # band 0 is the ambient level, band 1 (y, z, x basis order: -y, z, -x) the light direction
    light[:, :, 0] += offsets.get("intensity", 0.0)
    light[:, :, 1] += -offsets.get("from_top", 0.0)
    light[:, :, 3] += -offsets.get("from_right", 0.0)
    light[:, :, 2] += offsets.get("from_front", 0.0)
    out["light"] = light.reshape(-1, 27)
    return out


def edited_taus(yaw: float, pitch: float, roll: float, expression_offsets: dict[str, float],
                light_offsets: dict[str, float], reference_taus: tuple[str, ...]) -> tuple[str, ...]:
    """The groups an edit changes, in PIE's order."""
    taus = set(reference_taus)
    if yaw or pitch or roll:
        taus.add("pose")
    if any(expression_offsets.values()):
        taus.add("expression")
    if any(light_offsets.values()):
        taus.add("illumination")
    return tuple(t for t in TAU_KEYS if t in taus)


def config_from_kwargs(cls, **kwargs):
    """A dataclass from the keyword arguments it has fields for (node inputs carry more)."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in kwargs.items() if k in names})
