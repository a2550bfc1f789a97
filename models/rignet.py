"""RigNet (StyleRig, Tewari et al. CVPR 2020) as PIE uses it: a W+ latent and target 3DMM parameters of one
group tau (pose, expression or illumination) -> an edited W+ latent.

For every W+ layer l: an encoder ``Linear(w_dim -> code_dim)`` compresses w_l, the code is joined with the
target parameters theta^tau, and a decoder ``Linear(code_dim + tau_dim -> w_dim)`` gives the change of that
layer: ``RigNet(w, theta)_l = w_l + decoder_l([encoder_l(w_l), theta])``. StyleRig trains one RigNet per
group; :class:`RigNetBundle` holds the trained ones and is what a checkpoint stores.

``layers`` (ours; StyleRig edits every layer, the default) limits the layers a group's RigNet changes: the other
layers keep their w. Trained with a parameter-space pose loss through a landmark regressor, a RigNet free to
change every layer moved the regressed pose with identity, expression and appearance changes the regressor
misread, while the true pose stayed put; held to the pose layers it landed. With StyleRig's rendered losses every
layer did as well (docs/PIE.md has the numbers).

Checkpoint (``.safetensors`` or a tensors-only ``.pt``): the bundle's state dict with keys
``<tau>.encoders.<l>.{weight,bias}``, ``<tau>.decoders.<l>.{weight,bias}`` and metadata
``{"format": "facecontrol-rignet", "config": json}`` giving num_ws, w_dim, code_dim, the groups and their sizes
and (when set) ``tau_layers``, each group's edited layers; a file without it edits every layer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from .checkpoint import load_state_strict, read_state, reading_model_file

FORMAT = "facecontrol-rignet"


class RigNet(nn.Module):
    """One group's RigNet: per-layer encoder to ``code_dim``, joined with theta^tau, per-layer decoder."""

    def __init__(
        self, num_ws: int, w_dim: int, tau_dim: int, code_dim: int = 32, layers: Sequence[int] | None = None
    ) -> None:
        super().__init__()
        self.num_ws, self.w_dim, self.tau_dim, self.code_dim = num_ws, w_dim, tau_dim, code_dim
        self.layers = check_layers(layers, num_ws)
        self.encoders = nn.ModuleList(nn.Linear(w_dim, code_dim) for _ in range(num_ws))
        self.decoders = nn.ModuleList(nn.Linear(code_dim + tau_dim, w_dim) for _ in range(num_ws))
        for decoder in self.decoders:  # start close to the identity map
            nn.init.normal_(decoder.weight, std=1e-3)
            nn.init.zeros_(decoder.bias)

    def forward(self, w_plus: torch.Tensor, theta_tau: torch.Tensor) -> torch.Tensor:
        """(B,num_ws,w_dim), (B,tau_dim) -> edited (B,num_ws,w_dim)."""
        if w_plus.ndim != 3 or w_plus.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"RigNet expects W+ of shape (B,{self.num_ws},{self.w_dim}), got {tuple(w_plus.shape)}")
        if theta_tau.shape[-1] != self.tau_dim:
            raise ValueError(f"RigNet expects {self.tau_dim} target parameters, got {theta_tau.shape[-1]}")
        theta_tau = theta_tau.to(w_plus).expand(w_plus.shape[0], -1)
        layers = []
        for layer, (encoder, decoder) in enumerate(zip(self.encoders, self.decoders)):
            w_layer = w_plus[:, layer]
            if layer in self.layers:
                w_layer = w_layer + decoder(torch.cat([encoder(w_layer), theta_tau], -1))
            layers.append(w_layer)
        return torch.stack(layers, 1)


def check_layers(layers: Sequence[int] | None, num_ws: int) -> tuple[int, ...]:
    """The edited layers as a sorted tuple (every layer when ``layers`` is None); refuses an empty or
    out-of-range set."""
    if layers is None:
        return tuple(range(num_ws))
    chosen = tuple(sorted({int(layer) for layer in layers}))
    if not chosen or chosen[0] < 0 or chosen[-1] >= num_ws:
        raise ValueError(f"RigNet layers must be a non-empty subset of 0..{num_ws - 1}, got {list(layers)}")
    return chosen


class RigNetBundle(nn.Module):
    """The RigNets of several groups (``pose``, ``expression``, ``illumination``) over one generator's W+."""

    def __init__(
        self,
        num_ws: int,
        w_dim: int,
        tau_dims: Mapping[str, int],
        code_dim: int = 32,
        tau_layers: Mapping[str, Sequence[int]] | None = None,
    ) -> None:
        super().__init__()
        self.num_ws, self.w_dim, self.code_dim = num_ws, w_dim, code_dim
        self.tau_dims = dict(tau_dims)
        tau_layers = dict(tau_layers or {})
        unknown = set(tau_layers) - set(self.tau_dims)
        if unknown:
            raise ValueError(
                f"RigNet layers given for {sorted(unknown)}, which are not among its groups {list(tau_dims)}"
            )
        self.nets = nn.ModuleDict(
            {tau: RigNet(num_ws, w_dim, dim, code_dim, tau_layers.get(tau)) for tau, dim in self.tau_dims.items()}
        )

    @property
    def groups(self) -> list[str]:
        return list(self.tau_dims)

    def forward(self, tau: str, w_plus: torch.Tensor, theta_tau: torch.Tensor) -> torch.Tensor:
        if tau not in self.nets:
            raise KeyError(f"this RigNet has no '{tau}' network; it was trained for {self.groups}")
        return self.nets[tau](w_plus, theta_tau)

    @property
    def tau_layers(self) -> dict[str, tuple[int, ...]]:
        return {tau: net.layers for tau, net in self.nets.items()}

    def config(self) -> dict:
        return {
            "num_ws": self.num_ws,
            "w_dim": self.w_dim,
            "code_dim": self.code_dim,
            "tau_dims": self.tau_dims,
            "tau_layers": {tau: list(layers) for tau, layers in self.tau_layers.items()},
        }

    def state_for_file(self) -> dict[str, torch.Tensor]:
        return {key.replace("nets.", "", 1): value for key, value in self.state_dict().items()}


def save_rignet(bundle: RigNetBundle, path: str | Path, extra: Mapping[str, str] | None = None) -> None:
    """Write a bundle as safetensors with its config in the metadata."""
    from safetensors.torch import save_file

    metadata = {"format": FORMAT, "config": json.dumps(bundle.config())}
    metadata.update(extra or {})
    state = {k: v.detach().cpu().contiguous() for k, v in bundle.state_for_file().items()}
    save_file(state, str(path), metadata=metadata)


def load_rignet(path: str | Path) -> RigNetBundle:
    """Read a RigNet bundle written by :func:`save_rignet` (safetensors) or a torch file with ``config``."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with reading_model_file(path, "safetensors"), safe_open(str(path), "pt") as handle:
            metadata = handle.metadata() or {}
        if metadata.get("format") != FORMAT or "config" not in metadata:
            raise ValueError(f"{path} is not a FaceControl RigNet file (metadata format={metadata.get('format')!r})")
        config = json.loads(metadata["config"])
        state = read_state(path)
    else:
        checkpoint = read_state(path)
        if "config" not in checkpoint or "state" not in checkpoint:
            raise ValueError(f"{path}: expected {{'config', 'state'}} in a RigNet torch file")
        config, state = checkpoint["config"], checkpoint["state"]
    bundle = RigNetBundle(
        int(config["num_ws"]),
        int(config["w_dim"]),
        config["tau_dims"],
        int(config["code_dim"]),
        config.get("tau_layers"),
    )
    prefixed = {f"nets.{key}": value for key, value in state.items()}
    load_state_strict(bundle, prefixed, str(path))
    return bundle.eval().requires_grad_(False)
