"""Readers for the Diffusion Video Autoencoders checkpoints (PyTorch-Lightning files).

- `epoch=51-step=1000000.ckpt`: `state_dict` holds `ema_model.*` (used for inference) and `model.*`,
  each with the UNet keys and the `encoder.*` keys (IR-SE50, MobileNetV2-GDConv, BiSeNet, Linear).
- `last.ckpt` of the attribute classifier: `state_dict` holds `classifier.*`, `ema_classifier.*`,
  `conds_mean` and `conds_std` (both (1,512)).

Files are read with `torch.load(map_location="cpu", weights_only=True)`. Lightning also pickles some
metadata objects (hyper-parameter dicts, callback classes used as keys). When the plain weights-only
load refuses such a global from a known metadata module, it is replaced by an inert stand-in class
and the weights-only load is retried; no code from the file ever runs.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Mapping, Union

import torch

from .checkpoint import RefusedPickleError, torch_load_weights

__all__ = [
    "DVAStates",
    "DVAClassifierState",
    "load_lightning_checkpoint",
    "read_dva_checkpoint",
    "split_dva_state",
    "read_dva_classifier",
]

logger = logging.getLogger(__name__)

CheckpointSource = Union[str, os.PathLike, Mapping[str, Any]]
# Metadata that Lightning pickles next to the weights; these globals may be stubbed, nothing else.
_STUBBABLE_MODULE_ROOTS = ("pytorch_lightning", "lightning", "lightning_fabric", "argparse")
_WEIGHT_PREFIXES = {"ema": "ema_model.", "model": "model."}


@dataclass
class DVAStates:
    """UNet and encoder state dicts taken from one weight copy of the Lightning checkpoint."""

    unet: dict[str, torch.Tensor]
    encoder: dict[str, torch.Tensor]
    prefix: str


@dataclass
class DVAClassifierState:
    """Linear attribute classifier on z_id and the z_id statistics it was trained with."""

    weight: torch.Tensor  # (40, 512)
    bias: torch.Tensor  # (40,)
    conds_mean: torch.Tensor  # (1, 512)
    conds_std: torch.Tensor  # (1, 512)


class _InertMetadata:
    """Stand-in for a refused metadata class: rebuilding one yields a plain OrderedDict.

    (The weights-only unpickler accepts item and attribute state only on dict-like built-ins.)
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> "OrderedDict[Any, Any]":  # type: ignore[misc]
        return OrderedDict()


def _stub_for(qualified_name: str) -> type:
    return type(qualified_name.rsplit(".", 1)[-1], (_InertMetadata,), {"__module__": __name__})


def load_lightning_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """torch.load(weights_only=True) of a Lightning file, with inert stand-ins for its metadata classes."""
    try:
        return torch_load_weights(path)
    except RefusedPickleError as error:
        unknown = [name for name in error.refused if name.split(".", 1)[0] not in _STUBBABLE_MODULE_ROOTS]
        if unknown or not error.refused:
            raise
        refused = error.refused
    logger.info("replacing Lightning metadata classes by inert stand-ins: %s", ", ".join(refused))
    return torch_load_weights(path, [(_stub_for(name), name) for name in refused])


def _state_dict_of(source: CheckpointSource) -> Mapping[str, Any]:
    checkpoint = source if isinstance(source, Mapping) else load_lightning_checkpoint(source)
    state = checkpoint.get("state_dict", checkpoint)
    if not isinstance(state, Mapping):
        raise ValueError("checkpoint has no 'state_dict' mapping")
    return state


def split_dva_state(state: Mapping[str, Any], weights: str = "ema") -> DVAStates:
    """Select `ema_model.` (default) or `model.` keys and split them into UNet and `encoder.` parts."""
    if weights not in _WEIGHT_PREFIXES:
        raise ValueError(f"weights must be one of {sorted(_WEIGHT_PREFIXES)}, got {weights!r}")
    prefix = _WEIGHT_PREFIXES[weights]
    unet: dict[str, torch.Tensor] = {}
    encoder: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not key.startswith(prefix):
            continue
        name = key[len(prefix) :]
        if name.startswith("encoder."):
            encoder[name[len("encoder.") :]] = value
        else:
            unet[name] = value
    if not unet:
        found = sorted({key.split(".", 1)[0] + "." for key in state})
        raise ValueError(f"no '{prefix}*' keys in the DVA checkpoint (top-level prefixes found: {found})")
    return DVAStates(unet=unet, encoder=encoder, prefix=prefix)


def read_dva_checkpoint(source: CheckpointSource, weights: str = "ema") -> DVAStates:
    """Read `epoch=51-step=1000000.ckpt` (a path or an already loaded dict) into UNet/encoder states."""
    return split_dva_state(_state_dict_of(source), weights)


def read_dva_classifier(source: CheckpointSource, use_ema: bool = False) -> DVAClassifierState:
    """Read the classifier `last.ckpt`; the authors' edit uses `classifier.*` (use_ema=False)."""
    state = _state_dict_of(source)
    head = "ema_classifier." if use_ema else "classifier."
    missing = [k for k in (head + "weight", head + "bias", "conds_mean", "conds_std") if k not in state]
    if missing:
        raise ValueError(f"DVA classifier checkpoint lacks {', '.join(missing)}")
    return DVAClassifierState(
        weight=state[head + "weight"].float(),
        bias=state[head + "bias"].float(),
        conds_mean=state["conds_mean"].float().reshape(1, -1),
        conds_std=state["conds_std"].float().reshape(1, -1),
    )


def load_dva_networks(
    checkpoint: str | Mapping[str, Any],
    weights: str = "ema",
    aux_files: Mapping[str, str] | None = None,
):
    """(DVAUNet, DVAFaceEncoder) from the Lightning checkpoint, in eval mode on the CPU.

    weights: "ema" (inference default) or "model". The encoders are frozen during training, so when
    the chosen copy lacks `encoder.*` keys the other copy's are used. aux_files maps "idnet",
    "lndnet", "bgnet" to their own released files, which then replace the checkpoint's copies.
    """
    from .dva_face_encoder import build_dva_face_encoder, encoder_state_from_files
    from .dva_unet import build_dva_unet, unet_config_from_state

    loaded = checkpoint if isinstance(checkpoint, Mapping) else load_lightning_checkpoint(checkpoint)
    state = loaded.get("state_dict", loaded)
    states = split_dva_state(state, weights)
    encoder_state = states.encoder
    if not encoder_state:
        other = "model" if weights == "ema" else "ema"
        encoder_state = split_dva_state(state, other).encoder
    if "linear.weight" not in encoder_state:
        raise ValueError("the DVA checkpoint has no 'encoder.linear.*' (the face-code layer)")
    encoder_state = encoder_state_from_files(encoder_state, **dict(aux_files or {}))
    unet = build_dva_unet(states.unet, unet_config_from_state(states.unet))
    return unet, build_dva_face_encoder(encoder_state)
