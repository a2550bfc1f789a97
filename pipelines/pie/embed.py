"""PIE's hierarchical optimisation: W then W+ steps minimising the energies (embedding a portrait)."""

from __future__ import annotations

import contextlib
import functools
import logging
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch
from torch import nn

from .energies import PIEModels, PIEWeights, make_target, pie_energies
from .formation import Theta
from .generator import sample_w_plus

logger = logging.getLogger(__name__)


@dataclass
class EmbedConfig:
    steps_w: int = 2000
    steps_wplus: int = 1000
    lr: float = 0.01
    weights: PIEWeights = field(default_factory=PIEWeights)
    taus: tuple[str, ...] = ("pose", "expression", "illumination")
    seed: int = 0
    optimizer: str = "adam"  # or "adadelta" (the paper's; wants lr about 1)
    chunk: int = 0  # portraits optimised together (0: the whole batch)
    recognition_net: str = "ir_se50"  # the Psi the nodes load: ir_se50 (the pack's default) or vgg_face (PIE's)


#: recognition networks Psi of E_recognition: IR-SE50 (default: also DVA's, and ArcFace-trained) or VGG-Face (PIE's)
RECOGNITION_NETS = ("ir_se50", "vgg_face")


OPTIMIZERS = ("adam", "adadelta")


def make_optimizer(name: str, params: list[torch.Tensor], lr: float) -> torch.optim.Optimizer:
    """Adam (the default: the pack's step counts and learning rates were tuned with it, and it needs far fewer
    steps than AdaDelta at a given budget) or AdaDelta (PIE's optimiser; its rate is a multiplier, about 1)."""
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    if name == "adadelta":
        return torch.optim.Adadelta(params, lr=lr)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")


StepCallback = Callable[[int, int, dict[str, float], Callable[[], torch.Tensor]], None]


@dataclass
class EmbedResult:
    w_plus: torch.Tensor  # (B,num_ws,w_dim)
    theta: Theta  # regressed from the real portrait
    history: list[dict[str, float]]


@contextlib.contextmanager
def deterministic_backward() -> Iterator[None]:
    """Deterministic scatter-adds while optimising.

    The rasteriser's gathers accumulate their gradients with index_put, which on CPU adds in thread order;
    over many Adam steps that makes two runs with the same seed end apart (an untrained generator's edit
    even changes direction). Restored on exit.
    """
    previous, warn_only = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous, warn_only=warn_only)


def _deterministic(function: Callable) -> Callable:
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with deterministic_backward():
            return function(*args, **kwargs)

    return wrapper


def embed(
    models: PIEModels,
    image: torch.Tensor,
    config: EmbedConfig,
    rignet: nn.Module | None = None,
    on_step: StepCallback | None = None,
) -> EmbedResult:
    """Find w minimising E(w): ``steps_w`` steps in W (one w for all layers), then ``steps_wplus`` in W+.

    ``image`` (B,3,H,W) in [-1,1]. A fresh v is drawn every step and tau cycles through the RigNet's groups.
    ``on_step(step, total, energies, preview)`` is called after each step (``preview()`` returns I_w); with
    ``config.chunk`` the batch is embedded ``chunk`` portraits at a time (memory), the steps counted over all.
    """
    chunk = config.chunk or image.shape[0]
    if chunk >= image.shape[0]:
        return _embed(models, image, config, rignet, on_step)
    parts = list(torch.split(image, chunk))
    per_part = config.steps_w + config.steps_wplus
    results = []
    for index, part in enumerate(parts):

        def shifted(step, total, record, preview, offset=index * per_part):
            if on_step is not None:
                on_step(offset + step, per_part * len(parts), record, preview)

        results.append(_embed(models, part, config, rignet, shifted))
    history = [{**record, "chunk": index} for index, r in enumerate(results) for record in r.history]
    theta = {key: torch.cat([r.theta[key] for r in results]) for key in results[0].theta}
    return EmbedResult(torch.cat([r.w_plus for r in results]), theta, history)


@_deterministic
def _embed(
    models: PIEModels, image: torch.Tensor, config: EmbedConfig, rignet: nn.Module | None, on_step: StepCallback | None
) -> EmbedResult:
    generator = models.generator
    target = make_target(models, image)
    batch = target.image.shape[0]
    taus = [t for t in config.taus if rignet is not None and t in getattr(rignet, "groups", [])]
    rng = torch.Generator().manual_seed(config.seed)
    w = generator.w_avg.detach().reshape(1, 1, -1).repeat(batch, 1, 1).clone().requires_grad_(True)
    history: list[dict[str, float]] = []
    total = config.steps_w + config.steps_wplus
    step = 0
    for stage, steps in (("w", config.steps_w), ("w+", config.steps_wplus)):
        if steps <= 0:
            continue
        if stage == "w+":
            w = w.detach().expand(-1, generator.num_ws, -1).clone().requires_grad_(True)
        optimizer = make_optimizer(config.optimizer, [w], config.lr)
        for _ in range(steps):
            w_plus = w.expand(-1, generator.num_ws, -1) if stage == "w" else w
            tau = taus[step % len(taus)] if taus else None
            v_plus = sample_w_plus(generator, batch, rng) if tau else None
            energies, image_w = pie_energies(models, target, w_plus, config.weights, rignet, tau, v_plus)
            loss = sum(e.sum() for e in energies.values())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            record = {name: float(value.detach().mean()) for name, value in energies.items()}
            record.update(stage=stage, tau=tau or "", total=float(loss.detach()) / batch)
            history.append(record)
            logger.debug("PIE embed step %d/%d %s", step + 1, total, record)
            if on_step is not None:
                on_step(step, total, record, lambda image=image_w: image.detach())
            step += 1
    final = w.detach().expand(-1, generator.num_ws, -1).clone() if w.shape[1] == 1 else w.detach()
    return EmbedResult(w_plus=final, theta=target.theta, history=history)
