"""Reading released checkpoints safely: safetensors or tensors-only torch files, prefix stripping and a
strict load whose error names every missing, unexpected or mis-shaped key."""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Union

import torch
import torch.nn as nn

StateSource = Union[str, os.PathLike, Mapping]


def read_state(source: StateSource) -> dict:
    """A state dict (or checkpoint dict) from a mapping, a .safetensors file or a torch file, loaded safely."""
    if isinstance(source, Mapping):
        return dict(source)
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    return torch.load(str(path), map_location="cpu", weights_only=True)


def strip_prefix(state: Mapping, prefix: str = "module.") -> dict:
    return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state.items()}


def load_state_strict(module: nn.Module, state: Mapping, source: str = "state dict") -> nn.Module:
    """Load with strict=True, raising a ValueError that lists every missing, unexpected or mis-shaped key."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mis_shaped = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
                  for k, v in expected.items() if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or mis_shaped:
        parts = [f"{label} ({len(keys)}): {', '.join(keys)}"
                 for label, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                                     ("shape mismatches", mis_shaped)) if keys]
        raise ValueError(f"{source} does not match {type(module).__name__}: " + "; ".join(parts))
    module.load_state_dict(state, strict=True)
    return module


def describe_source(source: StateSource) -> str:
    return os.fspath(source) if isinstance(source, (str, os.PathLike)) else "state dict"


def read_state_dict(source: StateSource) -> dict[str, torch.Tensor]:
    """Like read_state, for files that must hold a plain state dict (an OrderedDict of tensors)."""
    state = read_state(source)
    if not isinstance(state, Mapping):
        raise ValueError(f"{describe_source(source)}: expected a state dict, got {type(state).__name__}")
    return dict(state)
