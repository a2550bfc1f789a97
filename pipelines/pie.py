"""PIE (Tewari et al. 2020): embed a real portrait in StyleGAN2's W/W+ and edit its pose, expression and
illumination through a 3DMM, with RigNet or directly. Plain PyTorch; no ComfyUI imports.

Pieces:

- :class:`FaceFormation`: what a 3DMM backend gives PIE. :class:`ICTFaceFormation` here (the open default);
  :class:`facecontrol.pipelines.pie_bfm.BFMFaceFormation` for the BFM with Deep3DFaceRecon's regressor.
- :class:`ICTFaceFormation`: the differentiable 3DMM image formation on the open ICT-FaceKit model.
  ``regress`` turns images into parameters theta (differentiably): 68 landmarks from a landmark network
  (MobileNetV2-GDConv), a closed-form weak-perspective pose and a ridge solve for identity and expression,
  27 SH lighting fitted to the image colours at the visible vertices, and a per-vertex albedo (ICT has
  none) = image colour / irradiance under that lighting. ``render`` rasterises theta with
  :mod:`facecontrol.face.render`. ``landmarks`` projects the 68 landmark vertices.
- :func:`image_loss`: l(I', theta) = photo * ||I' - render(theta)||^2_face + lmk * ||L(I') - L(theta)||^2.
- :func:`pie_energies`, :func:`embed`: the five energy terms and the hierarchical W then W+ optimisation.
- :func:`edit_direct`: the mode without RigNet (optimise the latent until the regressed theta of the
  generated image has the edited tau, keeps the rest and the identity); :func:`edit_rignet`.

Images are (B,3,H,W) in [-1,1] (the generator's range) unless a name says ``01``.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import math
from dataclasses import dataclass, field, fields
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..face.geometry import matrix_to_angles, weak_perspective
from ..face.ict_model import ICTFaceModel
from ..face.render import render_colors, sh_basis, sh_irradiance, vertex_normals, INIT_LIGHT
from ..models.stylegan_interface import StyleGAN2Generator

logger = logging.getLogger(__name__)

Theta = dict[str, torch.Tensor]
TAU_KEYS: dict[str, tuple[str, ...]] = {"pose": ("angles",), "expression": ("expression",), "illumination": ("light",)}
LANDMARK_CROP = (16 / 256, 240 / 256)  # the landmark network sees the centre 224 of a 256 view


# ----------------------------------------------------------------------------- 3DMM image formation


class FaceFormation(nn.Module):
    """What PIE needs from a 3DMM backend: ``regress`` images to theta (differentiably), ``render`` theta and
    project its 68 ``landmarks``, in the pixels of the image being analysed.

    theta always holds ``angles`` as (yaw, pitch, roll) radians with R = Rz(roll) Ry(yaw) Rx(pitch) (+yaw turns
    the nose to image right, +pitch down, +roll counter-clockwise), ``expression`` and ``light`` (27 SH offsets
    from Deep3DFaceRecon's 0.8 ambient). ``image_landmarks`` (L(I') of the loss) comes from the 68-point
    landmark network whatever the backend.
    """

    name = "base"
    #: identity, camera and appearance blocks an edit of other groups must keep
    kept_keys: tuple[str, ...] = ()
    #: typical spread of each parameter block, so distances between parameters weigh blocks alike
    param_scale: dict[str, float] = {}
    #: names of the expression coefficients the named sliders act on (empty: no named sliders)
    exp_names: list[str] = []

    def __init__(self, landmark_net: nn.Module) -> None:
        super().__init__()
        self.landmark_net = landmark_net

    @property
    def tau_dims(self) -> dict[str, int]:
        raise NotImplementedError

    def image_landmarks(self, images: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) [-1,1] -> (B,68,2) pixels, from the landmark network (differentiable)."""
        size = images.shape[-1]
        view = F.interpolate(images, size=(256, 256), mode="bilinear", align_corners=False, antialias=True) \
            if size != 256 else images
        unit = self.landmark_net.raw(view).view(images.shape[0], 68, 2)
        lo, hi = LANDMARK_CROP
        return (lo + (hi - lo) * unit) * size - 0.5

    def regress(self, images: torch.Tensor) -> Theta:
        raise NotImplementedError

    def render(self, theta: Theta, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """theta -> image in [0,1] (B,3,S,S) and face mask (B,1,S,S)."""
        raise NotImplementedError

    def landmarks(self, theta: Theta, size: int) -> torch.Tensor:
        """(B,68,2) projected landmark vertices in pixels."""
        raise NotImplementedError

    def other_keys(self, edited_keys) -> list[str]:
        """The blocks of theta outside ``edited_keys`` that an edit keeps."""
        return [key for key in self.kept_keys if key not in edited_keys]


class ICTFaceFormation(FaceFormation):
    """Differentiable regressor, renderer and landmark projection over the dense ICT-FaceKit mesh.

    Camera: weak perspective as in :mod:`facecontrol.face.ict_fit` (u = s X + tx, v = ty - s Y after
    rotation), in pixels of the image being analysed. ``scale`` and ``translation`` in theta are stored
    relative to the image size so theta means the same at any resolution.
    """

    name = "ict_facekit"
    kept_keys = ("identity", "expression", "angles", "scale", "translation", "light")
    param_scale = {"angles": 0.2, "expression": 0.3, "light": 0.2, "identity": 1.0, "scale": 0.1, "translation": 0.05}

    def __init__(self, model: ICTFaceModel, landmark_net: nn.Module, identity_ridge: float = 0.05,
                 expression_ridge: float = 0.2, light_ridge: float = 1e-3) -> None:
        super().__init__(landmark_net)
        if model.triangles is None:
            raise ValueError("the ICT model has no triangles: load face_model.npz (the dense mesh), not landmarks_model.npz")
        self.model = model
        self.exp_names = list(model.exp_names)
        self.identity_ridge, self.expression_ridge, self.light_ridge = identity_ridge, expression_ridge, light_ridge
        self.register_buffer("faces", model.triangles_skin if model.triangles_skin is not None else model.triangles)

    @property
    def tau_dims(self) -> dict[str, int]:
        return {"pose": 3, "expression": self.model.exp_basis.shape[0], "illumination": 27}

    # -- geometry
    def fit_geometry(self, landmarks: torch.Tensor, size: int) -> Theta:
        """Closed-form differentiable fit: pose from an affine camera made orthonormal, then a ridge solve
        for identity and expression under that pose, then the pose again."""
        mean = self.model.lmk_mean.to(landmarks)
        id_basis = self.model.lmk_id_basis.to(landmarks)
        exp_basis = self.model.lmk_exp_basis.to(landmarks)
        target = torch.stack([landmarks[..., 0], -landmarks[..., 1]], -1)  # y up
        shape = mean.expand(landmarks.shape[0], -1, -1)
        identity = expression = None
        for _ in range(2):
            rotation, scale, translation = _weak_perspective_pose(shape, target)
            identity, expression = self._ridge_shape(target, rotation, scale, translation, mean, id_basis, exp_basis)
            shape = mean + torch.einsum("bk,kpc->bpc", identity, id_basis) + torch.einsum("bk,kpc->bpc", expression, exp_basis)
        rotation, scale, translation = _weak_perspective_pose(shape, target)
        return {
            "identity": identity,
            "expression": expression,
            "angles": matrix_to_angles(rotation),
            "scale": (scale / size).unsqueeze(-1),
            "translation": torch.stack([translation[:, 0], -translation[:, 1]], -1) / size,
        }

    def _ridge_shape(self, target, rotation, scale, translation, mean, id_basis, exp_basis):
        projection = rotation[:, :2] * scale[:, None, None]  # (B,2,3)
        residual = target - translation[:, None] - mean @ projection.transpose(1, 2)  # (B,68,2)
        basis = torch.cat([id_basis, exp_basis], 0)  # (K,68,3)
        design = torch.einsum("bij,kpj->bpik", projection, basis).flatten(1, 2)  # (B,136,K)
        num_id = id_basis.shape[0]
        norm = (scale ** 2)[:, None] * 68
        ridge = torch.cat([torch.full((num_id,), self.identity_ridge), torch.full((basis.shape[0] - num_id,), self.expression_ridge)])
        lhs = design.transpose(1, 2) @ design + torch.diag_embed(ridge.to(design) * norm)
        rhs = design.transpose(1, 2) @ residual.flatten(1).unsqueeze(-1)
        solution = torch.linalg.solve(lhs, rhs).squeeze(-1)
        return solution[:, :num_id], solution[:, num_id:]

    def posed(self, theta: Theta, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Screen vertices (B,V,3: x, y pixels, depth away from the camera) and camera-frame unit normals."""
        shape = self.model.shape(theta["identity"], theta["expression"])
        rotated, uv = weak_perspective(shape, theta["angles"], theta["scale"] * size, theta["translation"] * size)
        return torch.cat([uv, -rotated[..., 2:]], -1), vertex_normals(rotated, self.faces)

    def landmarks(self, theta: Theta, size: int) -> torch.Tensor:
        shape = self.model.landmarks3d(theta["identity"], theta["expression"])
        return weak_perspective(shape, theta["angles"], theta["scale"] * size, theta["translation"] * size)[1]

    # -- appearance
    def fit_appearance(self, images: torch.Tensor, theta: Theta) -> Theta:
        """Add SH lighting (27) and per-vertex albedo estimated from the image (differentiable)."""
        size = images.shape[-1]
        screen, normals = self.posed(theta, size)
        grid = (screen[..., :2] + 0.5) / size * 2 - 1
        colours = F.grid_sample((images + 1) / 2, grid.unsqueeze(2), align_corners=False).squeeze(-1).transpose(1, 2)
        inside = ((grid.abs() < 1).all(-1)).to(images)
        weight = (normals[..., 2].clamp_min(0) * inside).detach()  # front-facing, inside the image
        basis = sh_basis(normals)  # (B,V,9)
        weighted = basis * weight.unsqueeze(-1)
        lhs = weighted.transpose(1, 2) @ basis + self.light_ridge * torch.eye(9, dtype=basis.dtype, device=basis.device)
        coeffs = torch.linalg.solve(lhs, weighted.transpose(1, 2) @ colours)  # (B,9,3): grey albedo 1
        light = coeffs.permute(0, 2, 1).clone()
        light[:, :, 0] = light[:, :, 0] - INIT_LIGHT
        light = light.reshape(-1, 27)
        irradiance = sh_irradiance(normals, light).clamp_min(1e-2)
        albedo = colours / irradiance
        mean_albedo = (albedo * weight.unsqueeze(-1)).sum(1, keepdim=True) / weight.sum(1, keepdim=True).clamp_min(1e-6).unsqueeze(-1)
        visible = (weight > 0.05).unsqueeze(-1)
        albedo = torch.where(visible, albedo, mean_albedo).clamp(0.0, 2.0)
        return {**theta, "light": light, "albedo": albedo}

    def regress(self, images: torch.Tensor) -> Theta:
        """(B,3,H,W) [-1,1] -> theta with identity, expression, angles, scale, translation, light, albedo."""
        geometry = self.fit_geometry(self.image_landmarks(images), images.shape[-1])
        return self.fit_appearance(images, geometry)

    def render(self, theta: Theta, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        screen, normals = self.posed(theta, size)
        colours = theta["albedo"] * sh_irradiance(normals, theta["light"])
        image, mask, _ = render_colors(screen, self.faces, colours, (size, size))
        return image, mask


def _weak_perspective_pose(shape: torch.Tensor, target: torch.Tensor):
    """Affine camera by least squares, rows made orthonormal by Gram-Schmidt (stable gradients, unlike an
    SVD with two near-equal singular values). shape (B,68,3) model points, target (B,68,2) y-up pixels."""
    centred_shape = shape - shape.mean(1, keepdim=True)
    centred_target = target - target.mean(1, keepdim=True)
    normal = centred_shape.transpose(1, 2) @ centred_shape
    camera = torch.linalg.solve(normal, centred_shape.transpose(1, 2) @ centred_target).transpose(1, 2)  # (B,2,3)
    norms = camera.norm(dim=-1)
    row0 = camera[:, 0] / norms[:, :1]
    row1 = camera[:, 1] - (camera[:, 1] * row0).sum(-1, keepdim=True) * row0
    row1 = row1 / row1.norm(dim=-1, keepdim=True)
    rotation = torch.stack([row0, row1, torch.linalg.cross(row0, row1)], 1)
    scale = norms.mean(-1)
    translation = target.mean(1) - scale[:, None] * (shape.mean(1, keepdim=True) @ rotation[:, :2].transpose(1, 2)).squeeze(1)
    return rotation, scale, translation


# ----------------------------------------------------------------------------- theta helpers


def tau_vector(theta: Theta, tau: str) -> torch.Tensor:
    """The parameters of group ``tau`` as one (B,D) vector (RigNet's input)."""
    return torch.cat([theta[key] for key in TAU_KEYS[tau]], -1)


def with_tau(base: Theta, source: Theta, tau: str) -> Theta:
    """[base^not-tau, source^tau]."""
    return {**base, **{key: source[key] for key in TAU_KEYS[tau]}}


def theta_distance(a: Theta, b: Theta, keys, scale: dict[str, float]) -> torch.Tensor:
    """(B,) sum over keys of the mean squared difference in units of each block's typical spread ``scale``."""
    total = 0.0
    for key in keys:
        total = total + ((a[key] - b[key]) / scale[key]).square().flatten(1).mean(1)
    return total


def detach_theta(theta: Theta) -> Theta:
    return {k: v.detach() for k, v in theta.items()}


# ----------------------------------------------------------------------------- losses and networks


def image_loss(formation: FaceFormation, image: torch.Tensor, theta: Theta, photo: float, landmark: float) -> torch.Tensor:
    """l(I', theta): masked photometric error against the render plus landmark error (in image widths), (B,)."""
    size = image.shape[-1]
    rendered, mask = formation.render(theta, size)
    diff = ((image + 1) / 2 - rendered).square() * mask
    photometric = diff.flatten(1).sum(1) / (3 * mask.flatten(1).sum(1)).clamp_min(1.0)
    lmk = ((formation.image_landmarks(image) - formation.landmarks(theta, size)) / size).square().sum(-1).mean(-1)
    return photo * photometric + landmark * lmk


def perceptual_distance(a: list[torch.Tensor], b: list[torch.Tensor]) -> torch.Tensor:
    return sum((x - y).square().flatten(1).mean(1) for x, y in zip(a, b))


# ----------------------------------------------------------------------------- generator access


def synthesize(generator: StyleGAN2Generator, w_plus: torch.Tensor) -> torch.Tensor:
    """W+ (B,num_ws,w_dim) -> image (B,3,R,R) in about [-1,1], stored (const) noise."""
    return generator.synthesis(w_plus, noise_mode="const")


def sample_w_plus(generator: StyleGAN2Generator, count: int, rng: torch.Generator, truncation: float = 0.7) -> torch.Tensor:
    """Random W+ latents (the v of the energies), truncated towards w_avg for plausible faces."""
    return generator.sample_ws(count, rng, truncation)


# ----------------------------------------------------------------------------- energies and embedding


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
class EmbedConfig:
    steps_w: int = 2000
    steps_wplus: int = 1000
    lr: float = 0.01
    weights: PIEWeights = field(default_factory=PIEWeights)
    taus: tuple[str, ...] = ("pose", "expression", "illumination")
    seed: int = 0


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


def pie_energies(models: PIEModels, target: Target, w_plus: torch.Tensor, weights: PIEWeights,
                 rignet: nn.Module | None = None, tau: str | None = None, v_plus: torch.Tensor | None = None
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
        energies["identity"] = weights.identity * (w_plus - rignet(tau, w_plus, tau_vector(theta_w, tau))).square().flatten(1).mean(1)
        with torch.no_grad():
            image_v = synthesize(models.generator, v_plus)
            theta_v = detach_theta(formation.regress(image_v))
        edited = rignet(tau, w_plus, tau_vector(theta_v, tau))
        image_edit = synthesize(models.generator, edited)
        theta_edit = formation.regress(image_edit)
        energies["edit"] = weights.edit * image_loss(formation, image_v, with_tau(theta_v, theta_edit, tau), weights.photo, weights.landmark)
        energies["invariance"] = weights.invariance * image_loss(formation, target.image, with_tau(theta_edit, target.theta, tau),
                                                                 weights.photo, weights.landmark)
        if models.recognition is not None and weights.recognition_edit > 0:
            recognition = recognition + weights.recognition_edit * (target.recognition - models.recognition(image_edit)).square().sum(-1)
    if models.recognition is not None:
        energies["recognition"] = recognition
    return energies, image_w


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
    previous, warn_only = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
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


@_deterministic
def embed(models: PIEModels, image: torch.Tensor, config: EmbedConfig, rignet: nn.Module | None = None,
          on_step: StepCallback | None = None) -> EmbedResult:
    """Find w minimising E(w): ``steps_w`` Adam steps in W (one w for all layers), then ``steps_wplus`` in W+.

    ``image`` (B,3,H,W) in [-1,1]. A fresh v is drawn every step and tau cycles through the RigNet's groups.
    ``on_step(step, total, energies, preview)`` is called after each step (``preview()`` returns I_w).
    """
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
        optimizer = torch.optim.Adam([w], lr=config.lr)
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


# ----------------------------------------------------------------------------- editing


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


def regress_generated(models: PIEModels, w_plus: torch.Tensor) -> Theta:
    with torch.no_grad():
        return detach_theta(models.formation.regress(synthesize(models.generator, w_plus)))


@_deterministic
def edit_direct(models: PIEModels, w_plus: torch.Tensor, target_theta: Theta, taus: tuple[str, ...],
                config: DirectEditConfig, on_step: StepCallback | None = None) -> tuple[torch.Tensor, list[dict[str, float]]]:
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
    optimizer = torch.optim.Adam([w], lr=config.lr)
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


def edit_rignet(rignet: nn.Module, w_plus: torch.Tensor, target_theta: Theta, taus: tuple[str, ...]) -> torch.Tensor:
    """Apply each group's RigNet in turn with the target parameters of that group."""
    with torch.no_grad():
        for tau in taus:
            w_plus = rignet(tau, w_plus, tau_vector(target_theta, tau).to(w_plus))
    return w_plus


# ----------------------------------------------------------------------------- edit targets


EXPRESSION_SLIDERS: dict[str, tuple[str, ...]] = {
    "smile": ("mouthSmile_L", "mouthSmile_R"),
    "jaw_open": ("jawOpen",),
    "blink": ("eyeBlink_L", "eyeBlink_R"),
    "brows_up": ("browInnerUp_L", "browInnerUp_R", "browOuterUp_L", "browOuterUp_R"),
}


def edited_theta(theta: Theta, exp_names: list[str], yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0,
                 expression_offsets: dict[str, float] | None = None, light_offsets: dict[str, float] | None = None,
                 reference: Theta | None = None, reference_taus: tuple[str, ...] = ()) -> Theta:
    """theta with pose offsets (degrees), named expression offsets, SH offsets, or groups from a reference."""
    out = {k: v.clone() for k, v in theta.items()}
    if reference is not None:
        for tau in reference_taus:
            for key in TAU_KEYS[tau]:
                out[key] = reference[key].to(out[key]).expand_as(out[key]).clone()
    out["angles"] = out["angles"] + torch.tensor([yaw, pitch, roll], dtype=out["angles"].dtype,
                                                 device=out["angles"].device) * (math.pi / 180)
    for name, offset in (expression_offsets or {}).items():
        if offset and not any(shape_name in exp_names for shape_name in EXPRESSION_SLIDERS[name]):
            raise ValueError(f"the expression slider '{name}' needs a face model with named expressions "
                             "(ict_facekit); the BFM's expressions are unnamed PCA components: copy the expression "
                             "from a reference face instead")
        for shape_name in EXPRESSION_SLIDERS[name]:
            if shape_name in exp_names and offset:
                index = exp_names.index(shape_name)
                out["expression"][:, index] = (out["expression"][:, index] + offset).clamp(0.0, 1.0)
    light = out["light"].view(-1, 3, 9)
    offsets = light_offsets or {}
    # band 0 is the ambient level, band 1 (y, z, x basis order: -y, z, -x) the light direction
    light[:, :, 0] += offsets.get("intensity", 0.0)
    light[:, :, 1] += -offsets.get("from_top", 0.0)
    light[:, :, 3] += -offsets.get("from_right", 0.0)
    light[:, :, 2] += offsets.get("from_front", 0.0)
    out["light"] = light.reshape(-1, 27)
    return out


def edited_taus(yaw: float, pitch: float, roll: float, expression_offsets: dict[str, float],
                light_offsets: dict[str, float], reference_taus: tuple[str, ...]) -> tuple[str, ...]:
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


# ----------------------------------------------------------------------------- RigNet training (StyleRig)


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
