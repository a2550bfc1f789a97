"""RigNet training losses (StyleRig, self-supervised over generator latents).

StyleRig's losses compare rendered images, in the same form as PIE's E_edit and E_invariance: for latents w
and v with images I_w, I_v and regressed parameters theta_w, theta_v, the edited latent w^ = RigNet(w,
theta_v^tau) has the image I_w^ with regressed parameters theta^, and

- reconstruction: RigNet(w, theta_w^tau) = w;
- edit: [theta_v^not-tau, theta^^tau] rendered reproduces I_v (photometric under the face mask + landmarks);
- consistency (cycle): [theta^^not-tau, theta_w^tau] rendered reproduces I_w.

Two terms are ours, off by default: ``parameter`` (distances between regressed parameters: the edited image
takes v's tau and keeps w's other blocks) and ``image`` (the edited image against the render of
[theta_w^not-tau, theta_v^tau]).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .energies import PIEModels, image_loss
from .formation import TAU_KEYS, detach_theta, tau_vector, theta_distance, with_tau
from .generator import synthesize


def parse_rig_layers(spec: str, generator, taus) -> dict[str, tuple[int, ...]]:
    """The W+ layers each group's RigNet edits. ``all``: every layer (StyleRig, returns {}); ``generator``: the
    generator's ``group_layers()``; or explicit ``pose=0-3;expression=4-7;illumination=8,9`` (groups left out edit
    every layer)."""
    spec = spec.strip()
    if spec == "all":
        return {}
    if spec == "generator":
        layers = generator.group_layers()
        return {tau: tuple(layers[tau]) for tau in taus}
    chosen: dict[str, tuple[int, ...]] = {}
    for part in filter(None, (item.strip() for item in spec.split(";"))):
        tau, _, ranges = part.partition("=")
        tau = tau.strip()
        if tau not in taus or not ranges.strip():
            raise ValueError(f"--layers: '{part}' is not <group>=<layers> for a trained group {list(taus)}")
        chosen[tau] = tuple(_layer_ranges(ranges, part))
    return chosen


def _layer_ranges(text: str, part: str) -> list[int]:
    layers = []
    for item in text.split(","):
        first, dash, last = item.strip().partition("-")
        try:
            layers.extend(range(int(first), int(last) + 1) if dash else [int(first)])
        except ValueError:
            raise ValueError(f"--layers: '{part}' has '{item.strip()}', not a layer or a range a-b") from None
    return layers


@dataclass
class RigNetLossWeights:
    reconstruction: float = 1.0
    edit: float = 1.0  # StyleRig's rendered edit loss
    consistency: float = 1.0  # StyleRig's rendered cycle-consistency loss
    parameter: float = 0.0  # ours: parameter-space edit + keep distances
    image: float = 0.0  # ours: edited image against the render of [theta_w^not-tau, theta_v^tau]
    photo: float = 1.0
    landmark: float = 10.0


def rignet_losses(
    models: PIEModels,
    rignet: nn.Module,
    tau: str,
    w_plus: torch.Tensor,
    v_plus: torch.Tensor,
    weights: RigNetLossWeights,
) -> dict[str, torch.Tensor]:
    """StyleRig's self-supervised losses for one batch of generator latents w and v (scalars)."""
    formation, generator = models.formation, models.generator
    with torch.no_grad():
        image_w, image_v = synthesize(generator, w_plus), synthesize(generator, v_plus)
        theta_w, theta_v = detach_theta(formation.regress(image_w)), detach_theta(formation.regress(image_v))
    losses = {
        "reconstruction": weights.reconstruction
        * (rignet(tau, w_plus, tau_vector(theta_w, tau)) - w_plus).square().mean()
    }
    edited_image = synthesize(generator, rignet(tau, w_plus, tau_vector(theta_v, tau)))
    theta_edit = formation.regress(edited_image)
    photo, landmark = weights.photo, weights.landmark
    losses["edit"] = (
        weights.edit * image_loss(formation, image_v, with_tau(theta_v, theta_edit, tau), photo, landmark).mean()
    )
    losses["consistency"] = (
        weights.consistency * image_loss(formation, image_w, with_tau(theta_edit, theta_w, tau), photo, landmark).mean()
    )
    if weights.parameter > 0:
        tau_keys = TAU_KEYS[tau]
        scale = formation.param_scale
        distance = theta_distance(theta_edit, theta_v, tau_keys, scale) + theta_distance(
            theta_edit, theta_w, formation.other_keys(tau_keys), scale
        )
        losses["parameter"] = weights.parameter * distance.mean()
    if weights.image > 0:
        wanted = with_tau(theta_w, theta_v, tau)
        losses["image"] = weights.image * image_loss(formation, edited_image, wanted, photo, landmark).mean()
    return losses
