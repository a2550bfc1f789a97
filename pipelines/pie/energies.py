"""The image loss l(I', theta) and PIE's five energy terms (E_synth, E_identity, E_edit, E_invariance,
E_recognition) for one latent."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...models.stylegan_interface import StyleGAN2Generator
from .formation import FaceFormation, Theta, detach_theta, tau_vector, with_tau
from .generator import synthesize


def image_loss(
    formation: FaceFormation, image: torch.Tensor, theta: Theta, photo: float, landmark: float
) -> torch.Tensor:
    """l(I', theta): masked photometric error against the render plus landmark error (in image widths), (B,)."""
    size = image.shape[-1]
    rendered, mask = formation.render(theta, size)
    diff = ((image + 1) / 2 - rendered).square() * mask
    photometric = diff.flatten(1).sum(1) / (3 * mask.flatten(1).sum(1)).clamp_min(1.0)
    lmk = ((formation.image_landmarks(image) - formation.landmarks(theta, size)) / size).square().sum(-1).mean(-1)
    return photo * photometric + landmark * lmk


def perceptual_distance(a: list[torch.Tensor], b: list[torch.Tensor]) -> torch.Tensor:
    return sum((x - y).square().flatten(1).mean(1) for x, y in zip(a, b))


@dataclass
class PIEWeights:
    """Energy weights. PIE's own values are not public; these are ours, chosen so every term matters."""

    l2: float = 1.0
    perceptual: float = 1.0
    identity: float = 1.0
    edit: float = 1.0
    invariance: float = 1.0
    recognition: float = 0.1
    recognition_edit: float = 0.1
    photo: float = 1.0
    landmark: float = 10.0


@dataclass
class PIEModels:
    """Everything the energies need; ``recognition`` maps [-1,1] images to embeddings (Psi)."""

    generator: StyleGAN2Generator
    formation: FaceFormation
    recognition: nn.Module | None = None
    perceptual: nn.Module | None = None


@dataclass
class Target:
    """The real portrait I at generator resolution and what the energies compare against (fixed)."""

    image: torch.Tensor
    theta: Theta
    recognition: torch.Tensor | None
    perceptual: list[torch.Tensor] | None


def make_target(models: PIEModels, image: torch.Tensor) -> Target:
    size = models.generator.resolution
    if image.shape[-1] != size or image.shape[-2] != size:
        image = F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    with torch.no_grad():
        theta = detach_theta(models.formation.regress(image))
        psi = models.recognition(image) if models.recognition is not None else None
        phi = [f.detach() for f in models.perceptual(image)] if models.perceptual is not None else None
    return Target(image=image, theta=theta, recognition=psi, perceptual=phi)


def pie_energies(
    models: PIEModels,
    target: Target,
    w_plus: torch.Tensor,
    weights: PIEWeights,
    rignet: nn.Module | None = None,
    tau: str | None = None,
    v_plus: torch.Tensor | None = None,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The PIE energy terms for latent ``w_plus`` (B,num_ws,w_dim) and the generated image I_w.

    Without ``rignet`` (or ``tau``/``v_plus``) only E_synth and the first recognition term are defined.
    """
    formation = models.formation
    image_w = synthesize(models.generator, w_plus)
    energies: dict[str, torch.Tensor] = {}
    synth = weights.l2 * (target.image - image_w).square().flatten(1).mean(1)
    if models.perceptual is not None and weights.perceptual > 0:
        synth = synth + weights.perceptual * perceptual_distance(target.perceptual, models.perceptual(image_w))
    energies["synth"] = synth
    recognition = torch.zeros_like(synth)
    if models.recognition is not None and weights.recognition > 0:
        recognition = weights.recognition * (target.recognition - models.recognition(image_w)).square().sum(-1)
    if rignet is not None and tau is not None and v_plus is not None:
        theta_w = formation.regress(image_w)
        energies["identity"] = weights.identity * (
            w_plus - rignet(tau, w_plus, tau_vector(theta_w, tau))
        ).square().flatten(1).mean(1)
        with torch.no_grad():
            image_v = synthesize(models.generator, v_plus)
            theta_v = detach_theta(formation.regress(image_v))
        edited = rignet(tau, w_plus, tau_vector(theta_v, tau))
        image_edit = synthesize(models.generator, edited)
        theta_edit = formation.regress(image_edit)
        energies["edit"] = weights.edit * image_loss(
            formation, image_v, with_tau(theta_v, theta_edit, tau), weights.photo, weights.landmark
        )
        energies["invariance"] = weights.invariance * image_loss(
            formation, target.image, with_tau(theta_edit, target.theta, tau), weights.photo, weights.landmark
        )
        if models.recognition is not None and weights.recognition_edit > 0:
            recognition = recognition + weights.recognition_edit * (
                target.recognition - models.recognition(image_edit)
            ).square().sum(-1)
    if models.recognition is not None:
        energies["recognition"] = recognition
    return energies, image_w
