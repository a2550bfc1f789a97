"""The one interface both StyleGAN2 generators implement (rosinality and NVlabs layouts).

Code that holds a generator (PIE's energies, RigNet training, the nodes) uses only this, so nothing has to
ask which implementation it holds:

* ``num_ws``, ``w_dim``, ``z_dim``, ``resolution``: ints.
* ``w_avg``: the mean w, ``(w_dim,)`` buffer; ``mean_ws(batch)`` gives it as W+ ``(batch, num_ws, w_dim)``.
* ``mapping(z, truncation_psi=1.0, truncation_cutoff=None) -> ws``: z ``(B, z_dim)`` -> W+
  ``(B, num_ws, w_dim)``. Pass the truncation by keyword (the NVlabs mapping takes labels ``c`` second).
* ``synthesis(ws, noise_mode="const") -> image``: W+ (or w ``(B, w_dim)``, broadcast) -> ``(B, 3, R, R)``
  float32, nominally in [-1, 1], not clamped.
* ``truncate(ws, psi, cutoff=None)`` and ``sample_ws(count, rng, truncation)``.
* ``device``, ``dtype`` (of the weights; images and latents are float32 whatever the compute precision).
* ``load_info``: what the loader read (``format`` or ``kind``, ``config``, ``resolution``, ``num_ws``,
  ``w_dim``, ``w_avg_source``, ``path``); every ``load_*`` returns the generator alone, with this set.
* ``group_layers()``: the W+ layers that carry pose, expression and illumination (a RigNet's edited layers
  with ``train_rignet.py --layers generator``): StyleGAN's coarse, middle and fine layers by default.
* Options, both off by default: ``gradient_checkpointing`` (synthesis blocks recompute their activations in
  the backward pass instead of keeping them: far less memory for a few tens of percent more time) and
  ``compute_dtype`` (``torch.bfloat16`` runs synthesis under autocast; see :mod:`.precision`).

``mapping`` and ``synthesis`` are not defined here: the NVlabs generator holds them as sub-modules (its
``state_dict`` keys are ``mapping.*``/``synthesis.*``), the rosinality one as methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .precision import check_compute_dtype


@dataclass
class GeneratorOptions:
    """Run-time options shared by a generator and its synthesis network (a plain object, not a module)."""

    gradient_checkpointing: bool = False
    compute_dtype: torch.dtype = torch.float32

    def use_checkpoints(self) -> bool:
        """Whether synthesis should checkpoint its blocks now (only when a backward pass can follow)."""
        return self.gradient_checkpointing and torch.is_grad_enabled()


class StyleGAN2Generator(nn.Module):
    """Base of :class:`.stylegan2.Generator` (rosinality) and :class:`.stylegan2_nvlabs.Generator` (NVlabs)."""

    kind: str = ""
    num_ws: int
    w_dim: int
    z_dim: int
    resolution: int
    w_avg: torch.Tensor
    load_info: dict[str, Any]

    def __init__(self) -> None:
        super().__init__()
        self.options = GeneratorOptions()
        self.load_info = {}

    # ------------------------------------------------------------------ latents

    def mean_ws(self, batch: int = 1) -> torch.Tensor:
        """``w_avg`` as W+ ``(batch, num_ws, w_dim)``."""
        return self.w_avg.detach().reshape(1, 1, -1).expand(batch, self.num_ws, -1).clone()

    def truncate(self, ws: torch.Tensor, psi: float, cutoff: int | None = None) -> torch.Tensor:
        """Move the first ``cutoff`` (all if None) layers of W+ towards ``w_avg`` by ``1 - psi``."""
        if psi == 1:
            return ws
        count = ws.shape[1] if cutoff is None else cutoff
        head = self.w_avg + psi * (ws[:, :count] - self.w_avg)
        return torch.cat([head, ws[:, count:]], dim=1)

    def sample_ws(self, count: int, rng: torch.Generator | None = None, truncation: float = 1.0) -> torch.Tensor:
        """W+ of ``count`` z drawn on the CPU from ``rng`` (the same on every device), truncated."""
        z = torch.randn(count, self.z_dim, generator=rng).to(self.device)
        return self.mapping(z, truncation_psi=truncation)

    def group_layers(self) -> dict[str, tuple[int, ...]]:
        """W+ layers of each PIE group: StyleGAN's coarse styles (4-8 px, layers 0-3) for the pose, the middle ones
        (16-32 px, 4-7) for the expression, the fine ones (64 px up) for the illumination, after Karras et al.'s
        reading of what each resolution controls (StyleGAN, CVPR 2019, Sec. 3.1). Ours, not StyleRig's."""
        coarse, middle = min(4, self.num_ws - 2), min(8, self.num_ws - 1)
        return {
            "pose": tuple(range(coarse)),
            "expression": tuple(range(coarse, middle)),
            "illumination": tuple(range(middle, self.num_ws)),
        }

    # ------------------------------------------------------------------ placement

    @property
    def device(self) -> torch.device:
        """Where the weights are (read from them, so it is right however the module was moved)."""
        return self.w_avg.device

    @device.setter
    def device(self, value: torch.device | str) -> None:
        # ComfyUI's ModelPatcher records the device it moved a model to as ``model.device``; keep that
        # record apart, the getter reads the weights themselves.
        self.__dict__["placed_device"] = value

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    @dtype.setter
    def dtype(self, value: torch.dtype) -> None:
        self.__dict__["placed_dtype"] = value

    # ------------------------------------------------------------------ options

    @property
    def gradient_checkpointing(self) -> bool:
        return self.options.gradient_checkpointing

    @gradient_checkpointing.setter
    def gradient_checkpointing(self, enabled: bool) -> None:
        self.options.gradient_checkpointing = bool(enabled)

    @property
    def compute_dtype(self) -> torch.dtype:
        return self.options.compute_dtype

    @compute_dtype.setter
    def compute_dtype(self, dtype: torch.dtype) -> None:
        self.options.compute_dtype = check_compute_dtype(dtype)

    def configure(
        self, gradient_checkpointing: bool | None = None, compute_dtype: torch.dtype | None = None
    ) -> "StyleGAN2Generator":
        """Set the options that are given; returns self."""
        if gradient_checkpointing is not None:
            self.gradient_checkpointing = gradient_checkpointing
        if compute_dtype is not None:
            self.compute_dtype = compute_dtype
        return self

    def describe(self) -> dict:
        return {
            "kind": self.kind,
            "resolution": self.resolution,
            "num_ws": self.num_ws,
            "w_dim": self.w_dim,
            "z_dim": self.z_dim,
            "gradient_checkpointing": self.gradient_checkpointing,
            "compute_dtype": str(self.compute_dtype).removeprefix("torch."),
        }


def run_block(options: GeneratorOptions, block, *args):
    """Call ``block(*args)``, through a non-reentrant checkpoint when the options ask for one."""
    if options.use_checkpoints():
        from torch.utils.checkpoint import checkpoint

        return checkpoint(block, *args, use_reentrant=False)
    return block(*args)
