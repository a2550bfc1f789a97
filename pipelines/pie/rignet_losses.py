"""RigNet training losses (StyleRig, self-supervised over generator latents)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .energies import PIEModels, image_loss
from .formation import TAU_KEYS, detach_theta, tau_vector, theta_distance, with_tau
from .generator import synthesize


@dataclass
class RigNetLossWeights:
    reconstruction: float = 1.0
    edit: float = 1.0
    consistency: float = 1.0
    image: float = 0.0  # rendered [theta_w^not-tau, theta_v^tau] against the edited image (StyleRig's render loss)
    photo: float = 1.0
    landmark: float = 10.0


def rignet_losses(models: PIEModels, rignet: nn.Module, tau: str, w_plus: torch.Tensor, v_plus: torch.Tensor,
                  weights: RigNetLossWeights) -> dict[str, torch.Tensor]:
    """StyleRig's self-supervised losses for one batch of generator latents w and v (scalars):

    - reconstruction: RigNet(w, theta_w^tau) = w;
    - edit: the image of RigNet(w, theta_v^tau) regresses to v's tau parameters;
    - consistency: ... and keeps w's other parameters (identity, the other groups, camera).
    """
    formation, generator = models.formation, models.generator
    with torch.no_grad():
        theta_w = detach_theta(formation.regress(synthesize(generator, w_plus)))
        theta_v = detach_theta(formation.regress(synthesize(generator, v_plus)))
    tau_keys = TAU_KEYS[tau]
    other_keys = formation.other_keys(tau_keys)
    losses = {"reconstruction": weights.reconstruction * (rignet(tau, w_plus, tau_vector(theta_w, tau)) - w_plus).square().mean()}
    edited_image = synthesize(generator, rignet(tau, w_plus, tau_vector(theta_v, tau)))
    theta_edit = formation.regress(edited_image)
    losses["edit"] = weights.edit * theta_distance(theta_edit, theta_v, tau_keys, formation.param_scale).mean()
    losses["consistency"] = weights.consistency * theta_distance(theta_edit, theta_w, other_keys, formation.param_scale).mean()
    if weights.image > 0:
        wanted = with_tau(theta_w, theta_v, tau)
        losses["image"] = weights.image * image_loss(formation, edited_image, wanted, weights.photo, weights.landmark).mean()
    return losses
