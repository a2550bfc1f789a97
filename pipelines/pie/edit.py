"""PIE edits: the edit targets (pose offsets, named expression sliders, SH light offsets, reference groups)
and the two ways to reach them, direct latent optimisation and RigNet."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, fields

import torch
from torch import nn

from .embed import StepCallback, _deterministic, make_optimizer
from .energies import PIEModels, image_loss
from .formation import TAU_KEYS, Theta, detach_theta, tau_vector, theta_distance
from .generator import synthesize

logger = logging.getLogger(__name__)


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
    optimizer: str = "adam"
    recognition_net: str = "ir_se50"  # the Psi the nodes load (embed.RECOGNITION_NETS)


def regress_generated(models: PIEModels, w_plus: torch.Tensor) -> Theta:
    with torch.no_grad():
        return detach_theta(models.formation.regress(synthesize(models.generator, w_plus)))


@_deterministic
def edit_direct(
    models: PIEModels,
    w_plus: torch.Tensor,
    target_theta: Theta,
    taus: tuple[str, ...],
    config: DirectEditConfig,
    on_step: StepCallback | None = None,
) -> tuple[torch.Tensor, list[dict[str, float]]]:
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
    optimizer = make_optimizer(config.optimizer, [w], config.lr)
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


EDIT_MODES = ("auto", "direct", "rignet")


def choose_mode(mode: str, rignet: nn.Module | None, taus: tuple[str, ...]) -> tuple[str, str]:
    """The mode that runs and why: ``auto`` is RigNet when one is loaded with a network for every edited group
    (its face model is checked by the caller), direct otherwise."""
    if mode not in EDIT_MODES:
        raise ValueError(f"'mode' must be one of {EDIT_MODES}, got {mode!r}")
    groups = list(getattr(rignet, "groups", []))
    if mode == "rignet":
        if rignet is None:
            raise ValueError("'mode' is rignet but no 'rignet' is connected; load one or use mode auto or direct")
        missing = [tau for tau in taus if tau not in groups]
        if missing:
            raise ValueError(f"'mode' is rignet but the RigNet has no network for {missing} (it has {groups})")
        return "rignet", "asked for"
    if mode == "direct":
        return "direct", "asked for"
    if rignet is None:
        return "direct", (
            "auto: no RigNet loaded (train one for this generator and face model with "
            "scripts/train_rignet.py --generator <file> --face-model <model> --out models/rignet/<name>.safetensors)"
        )
    missing = [tau for tau in taus if tau not in groups]
    if missing:
        return "direct", f"auto: the loaded RigNet has no network for {missing}"
    return "rignet", "auto: a RigNet is loaded for this face model and these groups"


@dataclass
class EditRequest:
    """What PIE Edit asks for: pose offsets (degrees), named expression and SH light offsets, and the groups to
    copy from a reference face (``reference_theta``, regressed by the caller)."""

    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    expression: dict[str, float] = field(default_factory=dict)
    light: dict[str, float] = field(default_factory=dict)
    reference_taus: tuple[str, ...] = ()
    reference_theta: Theta | None = None

    @property
    def taus(self) -> tuple[str, ...]:
        return edited_taus(self.yaw, self.pitch, self.roll, self.expression, self.light, self.reference_taus)


@dataclass
class EditOutcome:
    w_plus: torch.Tensor
    mode: str
    report: str
    history: list[dict[str, float]]


def run_edit(
    models: PIEModels,
    w_plus: torch.Tensor,
    request: EditRequest,
    mode: str = "auto",
    rignet: nn.Module | None = None,
    config: DirectEditConfig | None = None,
    on_step: StepCallback | None = None,
) -> EditOutcome:
    """PIE Edit: the target theta from the request, the mode (:func:`choose_mode`), the edit and its report."""
    taus = request.taus
    mode, why = choose_mode(mode, rignet, taus)
    before = regress_generated(models, w_plus)
    if request.reference_theta is not None and request.reference_theta["angles"].shape[0] not in (1, w_plus.shape[0]):
        raise ValueError(
            f"'reference' has {request.reference_theta['angles'].shape[0]} frames but 'pie_latent' has "
            f"{w_plus.shape[0]}: give one or one per frame"
        )
    target = edited_theta(
        before,
        models.formation.exp_names,
        request.yaw,
        request.pitch,
        request.roll,
        request.expression,
        request.light,
        request.reference_theta,
        request.reference_taus,
    )
    history: list[dict[str, float]] = []
    if not taus:
        edited = w_plus
    elif mode == "rignet":
        edited = edit_rignet(rignet, w_plus, target, taus)
    else:
        edited, history = edit_direct(models, w_plus, target, taus, config or DirectEditConfig(), on_step)
    after = regress_generated(models, edited)
    report = f"{edit_report(before, target, after, taus, mode, models.formation.exp_names)}\nmode: {why}"
    return EditOutcome(edited.detach(), mode, report, history)


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
LIGHT_SLIDER_NAMES = ("light_intensity", "light_from_top", "light_from_right", "light_from_front")
# every slider of PIE Edit, in the node's order (the composite node and the PIE runner take them from here)
EDIT_SLIDERS = ("yaw", "pitch", "roll", *EXPRESSION_SLIDERS, *LIGHT_SLIDER_NAMES)


def edited_theta(
    theta: Theta,
    exp_names: list[str],
    yaw: float = 0.0,
    pitch: float = 0.0,
    roll: float = 0.0,
    expression_offsets: dict[str, float] | None = None,
    light_offsets: dict[str, float] | None = None,
    reference: Theta | None = None,
    reference_taus: tuple[str, ...] = (),
) -> Theta:
    """theta with pose offsets (degrees), named expression offsets, SH offsets, or groups from a reference."""
    out = {k: v.clone() for k, v in theta.items()}
    if reference is not None:
        for tau in reference_taus:
            for key in TAU_KEYS[tau]:
                out[key] = reference[key].to(out[key]).expand_as(out[key]).clone()
    out["angles"] = out["angles"] + torch.tensor(
        [yaw, pitch, roll], dtype=out["angles"].dtype, device=out["angles"].device
    ) * (math.pi / 180)
    for name, offset in (expression_offsets or {}).items():
        if offset and not any(shape_name in exp_names for shape_name in EXPRESSION_SLIDERS[name]):
            raise ValueError(
                f"the expression slider '{name}' needs a face model with named expressions "
                "(ict_facekit); the BFM's expressions are unnamed PCA components: copy the expression "
                "from a reference face instead"
            )
        for shape_name in EXPRESSION_SLIDERS[name]:
            if shape_name in exp_names and offset:
                index = exp_names.index(shape_name)
                out["expression"][:, index] = (out["expression"][:, index] + offset).clamp(0.0, 1.0)
    base_light = out["light"].clone()
    light = out["light"].view(-1, 3, 9)
    offsets = light_offsets or {}
    # band 0 is the ambient level, band 1 (y, z, x basis order: -y, z, -x) the light direction
    light[:, :, 0] += offsets.get("intensity", 0.0)
    light[:, :, 1] += -offsets.get("from_top", 0.0)
    light[:, :, 3] += -offsets.get("from_right", 0.0)
    light[:, :, 2] += offsets.get("from_front", 0.0)
    out["light"] = limit_light(light.reshape(-1, 27), base_light)
    return out


def _visible_normals(count: int = 24) -> torch.Tensor:
    """Unit normals over the hemisphere facing the camera (z >= 0), the directions a visible face can have."""
    polar = torch.linspace(0, math.pi / 2, count // 2)
    azimuth = torch.linspace(0, 2 * math.pi, count + 1)[:-1]
    p, a = torch.meshgrid(polar, azimuth, indexing="ij")
    return torch.stack([p.sin() * a.cos(), p.sin() * a.sin(), p.cos()], -1).reshape(-1, 3)


def min_irradiance(light: torch.Tensor) -> torch.Tensor:
    """(B,27) -> (B,) the lowest irradiance of any colour over the visible hemisphere of normals."""
    from ...face.render import sh_irradiance

    normals = _visible_normals().to(light).unsqueeze(0).expand(light.shape[0], -1, -1)
    return sh_irradiance(normals, light).flatten(1).amin(1)


def limit_light(light: torch.Tensor, base: torch.Tensor, steps: int = 12) -> torch.Tensor:
    """Shorten the change from ``base`` to ``light`` (per sample) until the irradiance is non-negative on every
    visible normal; the light sliders beyond that would make negative light (about +-0.4 on a neutral light)."""
    low = torch.zeros(light.shape[0], 1, dtype=light.dtype, device=light.device)
    high = torch.ones_like(low)
    if bool((min_irradiance(light) >= 0).all()):
        return light
    for _ in range(steps):
        mid = (low + high) / 2
        ok = (min_irradiance(base + mid * (light - base)) >= 0).unsqueeze(1)
        low, high = torch.where(ok, mid, low), torch.where(ok, high, mid)
    logger.info(
        "PIE light edit limited to %s of the asked change (irradiance would go negative)",
        [round(float(x), 2) for x in low.flatten()],
    )
    return base + low * (light - base)


def light_summary(light: torch.Tensor) -> torch.Tensor:
    """(B,27) -> (B,4): the slider axes (intensity, from_top, from_right, from_front), colour-averaged."""
    mean = light.view(-1, 3, 9).mean(1)
    return torch.stack([mean[:, 0], -mean[:, 1], -mean[:, 3], mean[:, 2]], -1)


def edit_report(
    before: Theta, target: Theta, after: Theta, taus: tuple[str, ...], mode: str, exp_names: list[str]
) -> str:
    """Per frame: regressed pose, light (slider axes) and the changed expressions before -> target -> edited."""
    deg = 180 / math.pi
    lines = [f"mode {mode}; edited groups: {', '.join(taus) or 'none'}"]
    for i in range(before["angles"].shape[0]):
        b, t, a = ((x["angles"][i] * deg).tolist() for x in (before, target, after))
        lines.append(
            f"frame {i}: regressed yaw/pitch/roll {b[0]:.1f}/{b[1]:.1f}/{b[2]:.1f} -> target "
            f"{t[0]:.1f}/{t[1]:.1f}/{t[2]:.1f} -> edited {a[0]:.1f}/{a[1]:.1f}/{a[2]:.1f} deg"
        )
        lb, lt, la = (light_summary(x["light"][i : i + 1])[0].tolist() for x in (before, target, after))
        lines.append(
            "  light intensity/top/right/front "
            + " -> ".join("/".join(f"{round(v, 2) + 0.0:+.2f}" for v in values) for values in (lb, lt, la))
        )
        change = (target["expression"][i] - before["expression"][i]).abs()
        for index in [int(k) for k in change.argsort(descending=True)[:4] if change[k] > 0.02]:
            name = exp_names[index] if index < len(exp_names) else f"expression {index}"
            lines.append(
                f"  {name} {float(before['expression'][i, index]):.2f} -> "
                f"{float(target['expression'][i, index]):.2f} -> {float(after['expression'][i, index]):.2f}"
            )
    return "\n".join(lines)


def edited_taus(
    yaw: float,
    pitch: float,
    roll: float,
    expression_offsets: dict[str, float],
    light_offsets: dict[str, float],
    reference_taus: tuple[str, ...],
) -> tuple[str, ...]:
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
