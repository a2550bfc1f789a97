"""Reduced-precision compute for the networks PIE differentiates through (generator, VGG, recognition).

Weights stay float32; ``torch.autocast`` runs convolutions and matrix products in bfloat16 and the
results are returned as float32, so the latents, the energies and the optimiser stay in float32. bfloat16
keeps float32's exponent range, so the backward pass needs no loss scaling (fp16 would).
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch
from torch import nn

COMPUTE_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def check_compute_dtype(dtype: torch.dtype | str) -> torch.dtype:
    """``torch.float32``/``torch.bfloat16`` or their names ``"fp32"``/``"bf16"`` -> the dtype."""
    if isinstance(dtype, str):
        if dtype not in COMPUTE_DTYPES:
            raise ValueError(f"precision must be one of {sorted(COMPUTE_DTYPES)}, got {dtype!r}")
        return COMPUTE_DTYPES[dtype]
    if dtype not in COMPUTE_DTYPES.values():
        raise ValueError(f"compute dtype must be float32 or bfloat16, got {dtype}")
    return dtype


@contextlib.contextmanager
def autocast_context(device: torch.device | str, dtype: torch.dtype) -> Iterator[None]:
    """``torch.autocast`` to ``dtype`` on ``device``'s type; a no-op for float32."""
    if dtype == torch.float32:
        yield
        return
    device_type = torch.device(device).type
    with torch.autocast(device_type=device_type, dtype=dtype):
        yield


def to_float32(value: Any) -> Any:
    """Tensors (also inside lists/tuples) back to float32."""
    if isinstance(value, torch.Tensor):
        return value.float() if value.is_floating_point() else value
    if isinstance(value, (list, tuple)):
        return type(value)(to_float32(item) for item in value)
    return value


class AutocastModule(nn.Module):
    """Runs ``module`` under autocast to ``dtype`` and returns float32 outputs (tensors or lists of them).

    The wrapped network is the sub-module ``module``; wrap after loading its weights.
    """

    def __init__(self, module: nn.Module, dtype: torch.dtype | str = torch.bfloat16):
        super().__init__()
        self.module = module
        self.compute_dtype = check_compute_dtype(dtype)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        device = next(self.module.parameters()).device
        with autocast_context(device, self.compute_dtype):
            return to_float32(self.module(*args, **kwargs))

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("module"), name)


def with_precision(module: nn.Module | None, dtype: torch.dtype | str) -> nn.Module | None:
    """``module`` itself for float32 (or None), else an :class:`AutocastModule` around it."""
    dtype = check_compute_dtype(dtype)
    if module is None or dtype == torch.float32 or isinstance(module, AutocastModule):
        return module
    return AutocastModule(module, dtype)
