"""Fit the ICT-FaceKit 3DMM to 2-D iBUG-68 landmarks, batched over frames (Levenberg-Marquardt).

Camera: scaled orthographic (weak perspective). A model point X (cm, +y up, +z towards the viewer)
maps to image pixels (x right, y down) as::

    Y = R(angles) @ X
    u = scale * Y_x + translation_x
    v = translation_y - scale * Y_y

``R = Rz(roll) @ Ry(yaw) @ Rx(pitch)`` (right-handed, radians). With all angles zero the face looks
straight at the camera. Positive yaw turns the nose towards image right (the subject's left), positive
pitch tilts the nose down, positive roll turns the face counter-clockwise as seen in the image.
``scale`` is in pixels per cm and ``translation`` in pixels.

Unknowns: identity ``a`` (100, prior N(0, 1)) per identity group (one group per image, or one for
all frames of a video), expression ``b`` (53, bounded to [0, 1], L2 prior) and pose per frame. The
cost per group is the squared landmark residual in units of the inter-ocular distance (IOD, outer
eye corners 36-45) plus ``(sigma/identity_sigma)^2 ||a||^2 + (sigma/expression_sigma)^2 ||b||^2``
per frame, with ``sigma`` the assumed landmark noise as a fraction of the IOD. The shared identity
is eliminated with a Schur complement, so a step costs one small solve per frame and one 100x100
solve per group. Bounds are handled by projected steps with an active set.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace
from typing import Callable

import torch

from .geometry import matrix_to_angles, weak_perspective
from .ict_model import ICTFaceModel
from .temporal import smooth_over_frames

logger = logging.getLogger(__name__)

RIGHT_EYE_OUTER = 36  # iBUG 68, subject's right eye (image left)
LEFT_EYE_OUTER = 45
NUM_POSE = 6  # rotation increment (3), log scale, translation (2)
STEP_FRACTIONS = (1.0, 0.5, 0.25)
ACTIVE_SET_ROUNDS = 2  # more rounds change errors by <0.01% IOD and cost 40% more time
# Assumed landmark noise as a fraction of the IOD. Half of the 3% used by the data README's reference
# fit: with fixed-vertex jaw landmarks, yawed faces (t1.jpg, 25-35 deg) keep >3% IOD error at 0.03.
DEFAULT_LANDMARK_SIGMA = 0.015


@dataclass
class Fit3DMMResult:
    """Per-frame fit. ``angles`` = (yaw, pitch, roll) radians, ``scale`` px/cm, ``translation`` px."""

    identity: torch.Tensor  # (B,100)
    expression: torch.Tensor  # (B,53) in [0,1]
    angles: torch.Tensor  # (B,3)
    scale: torch.Tensor  # (B,)
    translation: torch.Tensor  # (B,2)
    identity_index: torch.Tensor  # (B,) long: frames with the same value share one identity
    model: ICTFaceModel = field(repr=False)

    def __len__(self) -> int:
        return self.identity.shape[0]

    def project(self) -> torch.Tensor:
        """(B,68,2) landmarks in image pixels."""
        return project(self)


def project_landmarks(
    model: ICTFaceModel,
    identity: torch.Tensor,
    expression: torch.Tensor,
    angles: torch.Tensor,
    scale: torch.Tensor,
    translation: torch.Tensor,
) -> torch.Tensor:
    """Project the 68 model landmarks of any coefficients with the camera above -> (B,68,2) px."""
    points = model.landmarks3d(identity, expression).to(angles)
    return weak_perspective(points, angles, scale, translation)[1]


def project(result: Fit3DMMResult) -> torch.Tensor:
    """(B,68,2) projected landmarks of a fit, in image pixels."""
    return project_landmarks(
        result.model, result.identity, result.expression, result.angles, result.scale, result.translation
    )


def recombine(identity_source: Fit3DMMResult, motion_source: Fit3DMMResult) -> Fit3DMMResult:
    """Identity from one fit, expression and pose from another (e.g. source face, driving video).

    The identity source may hold one frame (broadcast) or as many frames as the motion source.
    """
    frames = len(motion_source)
    identity = identity_source.identity
    if identity.shape[0] == 1:
        identity = identity.expand(frames, -1)
    elif identity.shape[0] != frames:
        raise ValueError(
            f"identity source has {identity.shape[0]} frames and motion source {frames}; "
            "give one identity frame or one per motion frame"
        )
    index = torch.zeros(frames, dtype=torch.long, device=identity.device)
    if identity_source.identity.shape[0] != 1:
        index = identity_source.identity_index.clone()
    return replace(motion_source, identity=identity.clone(), identity_index=index)


def interocular_distance(landmarks: torch.Tensor) -> torch.Tensor:
    """(B,68,2) -> (B,) distance between the outer eye corners 36 and 45."""
    return (landmarks[:, RIGHT_EYE_OUTER] - landmarks[:, LEFT_EYE_OUTER]).norm(dim=-1)


def reprojection_error(result: Fit3DMMResult, landmarks: torch.Tensor) -> torch.Tensor:
    """(B,) mean 68-point distance between the fit's projection and ``landmarks``, as a fraction of IOD."""
    landmarks = landmarks.to(result.angles)
    distance = (project(result) - landmarks).norm(dim=-1).mean(-1)
    return distance / interocular_distance(landmarks)


def smooth_fit(result: Fit3DMMResult, sigma: float) -> Fit3DMMResult:
    """Temporally smooth pose and expression (not identity) with a Gaussian of ``sigma`` frames."""
    if sigma <= 0:
        return result
    angles = _unwrap(result.angles)
    return replace(
        result,
        angles=smooth_over_frames(angles, sigma),
        scale=smooth_over_frames(result.scale.log(), sigma).exp(),
        translation=smooth_over_frames(result.translation, sigma),
        expression=smooth_over_frames(result.expression, sigma).clamp(0.0, 1.0),
    )


def _unwrap(angles: torch.Tensor) -> torch.Tensor:
    steps = torch.diff(angles, dim=0)
    wrapped = (steps + math.pi) % (2 * math.pi) - math.pi
    return torch.cat([angles[:1], angles[:1] + torch.cumsum(wrapped, 0)], 0)


# --------------------------------------------------------------------------------------------------
# Solver


@dataclass
class _State:
    rotation: torch.Tensor  # (B,3,3)
    log_scale: torch.Tensor  # (B,)
    translation: torch.Tensor  # (B,2)
    expression: torch.Tensor  # (B,53)
    identity: torch.Tensor  # (G,100)


@dataclass
class _Problem:
    target: torch.Tensor  # (B,68,2) normalised landmarks, y up
    mean: torch.Tensor  # (68,3)
    id_basis: torch.Tensor  # (100,68,3)
    exp_basis: torch.Tensor  # (53,68,3)
    group: torch.Tensor  # (B,) long
    num_groups: int
    identity_weight: float
    expression_weight: float
    fit_identity: bool
    fit_expression: bool
    coupled_expressions: tuple[int, int] | None  # (mouthClose, jawOpen): keep b_close <= b_jaw


def fit_landmarks(
    landmarks: torch.Tensor,
    model: ICTFaceModel,
    *,
    shared_identity: bool = False,
    identity_index: torch.Tensor | None = None,
    iterations: int = 10,
    landmark_sigma: float = DEFAULT_LANDMARK_SIGMA,
    identity_sigma: float = 1.0,
    expression_sigma: float = 0.5,
    fit_identity: bool = True,
    fit_expression: bool = True,
    smooth_sigma: float = 0.0,
    on_iteration: Callable[[int], None] | None = None,
) -> Fit3DMMResult:
    """Fit identity, expression and weak-perspective pose to (B,68,2) iBUG-68 landmarks in pixels.

    ``shared_identity=True`` fits one identity for all B frames (one person's video); otherwise each
    frame gets its own. ``identity_index`` (B,) overrides both with arbitrary groups. ``smooth_sigma``
    (frames) applies :func:`smooth_fit` to the result. ``on_iteration(i)`` is called after each Levenberg-Marquardt
    iteration (progress, cancel). Works on the landmarks' device.
    """
    landmarks = _check_landmarks(landmarks)
    frames = landmarks.shape[0]
    group = _identity_groups(frames, shared_identity, identity_index, landmarks.device)
    problem, centre, iod = _build_problem(
        landmarks, model, group, landmark_sigma, identity_sigma, expression_sigma, fit_identity, fit_expression
    )
    state = _initial_state(problem)
    state = _levenberg_marquardt(problem, state, iterations, on_iteration)
    result = _to_result(state, problem, centre, iod, model, landmarks.dtype)
    return smooth_fit(result, smooth_sigma)


def _check_landmarks(landmarks: torch.Tensor) -> torch.Tensor:
    landmarks = torch.as_tensor(landmarks)
    if landmarks.ndim == 2:
        landmarks = landmarks.unsqueeze(0)
    if landmarks.ndim != 3 or landmarks.shape[1:] != (68, 2):
        raise ValueError(f"landmarks must be (B,68,2) iBUG-68 points in pixels, got {tuple(landmarks.shape)}")
    if not landmarks.is_floating_point():
        landmarks = landmarks.float()
    bad = (~torch.isfinite(landmarks)).flatten(1).any(1) | (interocular_distance(landmarks) <= 0)
    if bad.any():
        raise ValueError(f"landmarks of frame(s) {bad.nonzero().flatten().tolist()} are not finite or degenerate")
    return landmarks


def _identity_groups(
    frames: int, shared: bool, identity_index: torch.Tensor | None, device: torch.device
) -> torch.Tensor:
    if identity_index is not None:
        index = torch.as_tensor(identity_index, dtype=torch.long, device=device)
        if index.shape != (frames,):
            raise ValueError(f"identity_index must have shape ({frames},), got {tuple(index.shape)}")
        return torch.unique(index, return_inverse=True)[1]
    if shared:
        return torch.zeros(frames, dtype=torch.long, device=device)
    return torch.arange(frames, device=device)


def _build_problem(
    landmarks: torch.Tensor,
    model: ICTFaceModel,
    group: torch.Tensor,
    landmark_sigma: float,
    identity_sigma: float,
    expression_sigma: float,
    fit_identity: bool,
    fit_expression: bool,
) -> tuple[_Problem, torch.Tensor, torch.Tensor]:
    dtype = torch.float64  # normal equations of 159 unknowns: float32 loses too much
    points = landmarks.to(dtype)
    centre = points.mean(1)
    iod = interocular_distance(points)
    target = (points - centre[:, None]) / iod[:, None, None]
    target = target * torch.tensor([1.0, -1.0], dtype=dtype, device=points.device)
    names = model.exp_names
    coupled = None
    if "mouthClose" in names and "jawOpen" in names:
        coupled = (names.index("mouthClose"), names.index("jawOpen"))
    problem = _Problem(
        target=target,
        mean=model.lmk_mean.to(points),
        id_basis=model.lmk_id_basis.to(points),
        exp_basis=model.lmk_exp_basis.to(points),
        group=group,
        num_groups=int(group.max().item()) + 1,
        identity_weight=(landmark_sigma / identity_sigma) ** 2,
        expression_weight=(landmark_sigma / expression_sigma) ** 2,
        fit_identity=fit_identity,
        fit_expression=fit_expression,
        coupled_expressions=coupled,
    )
    return problem, centre, iod


def _initial_state(problem: _Problem) -> _State:
    """Pose from an affine camera fit of the mean landmarks, made orthonormal."""
    frames = problem.target.shape[0]
    homogeneous = torch.cat([problem.mean, torch.ones_like(problem.mean[:, :1])], 1)  # (68,4)
    camera = torch.linalg.pinv(homogeneous) @ problem.target  # (B,4,2)
    affine = camera[:, :3].transpose(1, 2)  # (B,2,3)
    u, singular, vh = torch.linalg.svd(affine, full_matrices=False)
    rows = u @ vh
    rotation = torch.cat([rows, torch.linalg.cross(rows[:, 0], rows[:, 1]).unsqueeze(1)], 1)
    scale = singular.mean(-1)
    projected_mean = scale[:, None] * (problem.mean @ rows.transpose(1, 2)).mean(1)
    translation = problem.target.mean(1) - projected_mean
    num_exp = problem.exp_basis.shape[0]
    return _State(
        rotation=rotation,
        log_scale=scale.log(),
        translation=translation,
        expression=problem.target.new_zeros(frames, num_exp),
        identity=problem.target.new_zeros(problem.num_groups, problem.id_basis.shape[0]),
    )


def _model_points(problem: _Problem, state: _State) -> torch.Tensor:
    identity = state.identity[problem.group]
    return (
        problem.mean
        + torch.einsum("bk,kpc->bpc", identity, problem.id_basis)
        + torch.einsum("bk,kpc->bpc", state.expression, problem.exp_basis)
    )


def _residuals(problem: _Problem, state: _State) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,68,2) residuals and (B,68,3) rotated model points."""
    rotated = _model_points(problem, state) @ state.rotation.transpose(1, 2)
    scale = state.log_scale.exp()[:, None, None]
    residual = scale * rotated[..., :2] + state.translation[:, None] - problem.target
    return residual, rotated


def _group_cost(problem: _Problem, state: _State, residual: torch.Tensor) -> torch.Tensor:
    frame_cost = residual.square().flatten(1).sum(1)
    frame_cost = frame_cost + problem.expression_weight * state.expression.square().sum(1)
    cost = frame_cost.new_zeros(problem.num_groups).index_add_(0, problem.group, frame_cost)
    return cost + _identity_weights(problem) * state.identity.square().sum(1)


def _identity_weights(problem: _Problem) -> torch.Tensor:
    """(G,) identity prior weight, counted once per frame of the group.

    Landmark errors are correlated over the frames of one video (same detector bias), so frames are
    not independent evidence; a per-frame prior keeps a shared identity as plausible as a per-image one.
    """
    frames = torch.bincount(problem.group, minlength=problem.num_groups).to(problem.target)
    return problem.identity_weight * frames


def _jacobians(
    problem: _Problem, state: _State, rotated: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Jacobians of the flattened (B,136) residuals: pose (B,136,6), expression (B,136,53), identity."""
    scale = state.log_scale.exp()[:, None, None]
    x, y, z = rotated.unbind(-1)
    zero = torch.zeros_like(x)
    # left-multiplied rotation increment: d(R X) = omega x (R X)
    d_u = torch.stack([zero, z, -y, x, torch.ones_like(x), zero], -1)
    d_v = torch.stack([-z, zero, x, y, zero, torch.ones_like(x)], -1)
    pose = torch.stack([d_u, d_v], -2)  # (B,68,2,6)
    pose[..., :4] = pose[..., :4] * scale[..., None]
    projection = state.rotation[:, :2] * scale  # (B,2,3)
    expression = torch.einsum("bij,kpj->bpik", projection, problem.exp_basis)
    identity = torch.einsum("bij,kpj->bpik", projection, problem.id_basis)
    return pose.flatten(1, 2), expression.flatten(1, 2), identity.flatten(1, 2)


def _lm_step(
    problem: _Problem, state: _State, residual: torch.Tensor, rotated: torch.Tensor, damping: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Damped Gauss-Newton increments, per frame (B,59) and per identity group (G,100).

    The expression bounds are met by an active set inside the step: weights that would leave [0,1]
    are pinned to the bound they cross and the damped system is solved again for the others.
    """
    system = _normal_equations(problem, state, residual, rotated, damping)
    pinned = _pinned_at_bounds(problem, state.expression, system.g_frame[:, NUM_POSE:])
    pinned_step = torch.zeros_like(state.expression)
    for _ in range(ACTIVE_SET_ROUNDS):
        frame_step, id_step = _solve_pinned(problem, state, system, pinned, pinned_step)
        proposed = state.expression + frame_step[:, NUM_POSE:]
        leaving = (~pinned) & ((proposed < 0) | (proposed > 1))
        if not bool(leaving.any()):
            break
        pinned = pinned | leaving
        pinned_step = torch.where(leaving, proposed.clamp(0.0, 1.0) - state.expression, pinned_step)
    return frame_step, id_step


@dataclass
class _NormalEquations:
    h_frame: torch.Tensor  # (B,59,59) damped, with the expression prior
    g_frame: torch.Tensor  # (B,59)
    h_cross: torch.Tensor | None  # (B,59,100) frame unknowns x identity
    h_id: torch.Tensor | None  # (B,100,100) per frame, summed over a group later
    g_id: torch.Tensor | None  # (B,100)
    damping: torch.Tensor  # (G,)


def _normal_equations(
    problem: _Problem, state: _State, residual: torch.Tensor, rotated: torch.Tensor, damping: torch.Tensor
) -> _NormalEquations:
    r = residual.flatten(1).unsqueeze(-1)  # (B,136,1)
    j_pose, j_exp, j_id = _jacobians(problem, state, rotated)
    j_frame = torch.cat([j_pose, j_exp], -1)  # (B,136,59)
    h_frame = j_frame.transpose(1, 2) @ j_frame
    g_frame = (j_frame.transpose(1, 2) @ r).squeeze(-1)
    diagonal = h_frame.diagonal(dim1=1, dim2=2)
    diagonal[:, NUM_POSE:] += problem.expression_weight
    g_frame[:, NUM_POSE:] += problem.expression_weight * state.expression
    diagonal += damping[problem.group, None] * diagonal + 1e-9
    if not problem.fit_identity:
        return _NormalEquations(h_frame, g_frame, None, None, None, damping)
    j_id_t = j_id.transpose(1, 2)
    return _NormalEquations(
        h_frame, g_frame, j_frame.transpose(1, 2) @ j_id, j_id_t @ j_id, (j_id_t @ r).squeeze(-1), damping
    )


def _pinned_at_bounds(problem: _Problem, expression: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
    """(B,53) bool: weights held at a bound because descent would push them past it."""
    if not problem.fit_expression:
        return torch.ones_like(expression, dtype=torch.bool)
    return ((expression <= 0) & (gradient > 0)) | ((expression >= 1) & (gradient < 0))


def _solve_pinned(
    problem: _Problem, state: _State, system: _NormalEquations, pinned: torch.Tensor, pinned_step: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Solve the damped system with the steps of pinned expression weights fixed to ``pinned_step``."""
    free = torch.cat([torch.ones_like(pinned[:, :NUM_POSE]), ~pinned], 1).to(system.h_frame)
    fixed = torch.cat([torch.zeros_like(pinned_step[:, :NUM_POSE]), pinned_step], 1) * (1 - free)
    h_frame = system.h_frame * free[:, :, None] * free[:, None, :] + torch.diag_embed(1 - free)
    g_frame = free * (system.g_frame + (system.h_frame @ fixed.unsqueeze(-1)).squeeze(-1))
    if not problem.fit_identity:
        step = -_solve_spd(h_frame, g_frame.unsqueeze(-1)).squeeze(-1)
        return step + fixed, torch.zeros_like(state.identity)
    h_cross = system.h_cross * free[:, :, None]
    g_id = system.g_id + (system.h_cross.transpose(1, 2) @ fixed.unsqueeze(-1)).squeeze(-1)
    frame_step, id_step = _schur_step(problem, state, h_frame, g_frame, h_cross, system.h_id, g_id, system.damping)
    return frame_step + fixed, id_step


def _schur_step(
    problem: _Problem,
    state: _State,
    h_frame: torch.Tensor,
    g_frame: torch.Tensor,
    h_cross: torch.Tensor,
    h_id: torch.Tensor,
    g_id: torch.Tensor,
    damping: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eliminate the per-frame unknowns, solve each group's identity, back-substitute."""
    groups, group = problem.num_groups, problem.group
    num_id = h_id.shape[-1]
    solved = _solve_spd(h_frame, torch.cat([g_frame.unsqueeze(-1), h_cross], -1))
    inv_g, inv_cross = solved[..., 0], solved[..., 1:]
    reduced_frame = h_id - h_cross.transpose(1, 2) @ inv_cross
    rhs_frame = g_id - (h_cross.transpose(1, 2) @ inv_g.unsqueeze(-1)).squeeze(-1)
    reduced = reduced_frame.new_zeros(groups, num_id, num_id).index_add_(0, group, reduced_frame)
    rhs = rhs_frame.new_zeros(groups, num_id).index_add_(0, group, rhs_frame)
    h_id_diag = h_id.diagonal(dim1=1, dim2=2)
    prior = _identity_weights(problem)[:, None]
    diag = h_id_diag.new_zeros(groups, num_id).index_add_(0, group, h_id_diag) + prior
    reduced = reduced + torch.diag_embed(prior.expand(-1, num_id) + damping[:, None] * diag)
    rhs = rhs + prior * state.identity
    id_step = -_solve_spd(reduced, rhs.unsqueeze(-1)).squeeze(-1)
    frame_step = -(inv_g + (inv_cross @ id_step[group].unsqueeze(-1)).squeeze(-1))
    return frame_step, id_step


def _solve_spd(matrix: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """Solve damped normal equations by Cholesky, falling back to LU where a factor fails."""
    factor, info = torch.linalg.cholesky_ex(matrix)
    if bool((info == 0).all()):
        return torch.cholesky_solve(rhs, factor)
    return torch.linalg.solve(matrix, rhs)


def _apply_step(problem: _Problem, state: _State, frame_step: torch.Tensor, id_step: torch.Tensor) -> _State:
    rotation = _axis_angle_matrix(frame_step[:, :3]) @ state.rotation
    expression = _project_expression(problem, state.expression + frame_step[:, NUM_POSE:])
    return _State(
        rotation=rotation,
        log_scale=state.log_scale + frame_step[:, 3],
        translation=state.translation + frame_step[:, 4:6],
        expression=expression,
        identity=state.identity + id_step,
    )


def _axis_angle_matrix(omega: torch.Tensor) -> torch.Tensor:
    """(B,3) rotation vectors -> (B,3,3) via the matrix exponential of the skew matrix."""
    zero = torch.zeros_like(omega[:, 0])
    wx, wy, wz = omega.unbind(-1)
    skew = torch.stack([zero, -wz, wy, wz, zero, -wx, -wy, wx, zero], -1).unflatten(-1, (3, 3))
    return torch.linalg.matrix_exp(skew)


def _select(accept: torch.Tensor, new: _State, old: _State, group: torch.Tensor) -> _State:
    frame = accept[group]

    def pick(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.where(mask.view(-1, *([1] * (a.ndim - 1))), a, b)

    return _State(
        rotation=pick(new.rotation, old.rotation, frame),
        log_scale=pick(new.log_scale, old.log_scale, frame),
        translation=pick(new.translation, old.translation, frame),
        expression=pick(new.expression, old.expression, frame),
        identity=pick(new.identity, old.identity, accept),
    )


def _levenberg_marquardt(
    problem: _Problem, state: _State, iterations: int, on_iteration: Callable[[int], None] | None = None
) -> _State:
    damping = problem.target.new_full((problem.num_groups,), 1e-3)
    residual, rotated = _residuals(problem, state)
    cost = _group_cost(problem, state, residual)
    for iteration in range(iterations):
        frame_step, id_step = _lm_step(problem, state, residual, rotated, damping)
        best, best_residual, best_rotated, best_cost = state, residual, rotated, cost
        # the projection onto the expression bounds can make a full step overshoot: try shorter ones
        for fraction in STEP_FRACTIONS:
            candidate = _apply_step(problem, state, fraction * frame_step, fraction * id_step)
            new_residual, new_rotated = _residuals(problem, candidate)
            new_cost = _group_cost(problem, candidate, new_residual)
            better = new_cost < best_cost
            frame_better = better[problem.group].view(-1, 1, 1)
            best = _select(better, candidate, best, problem.group)
            best_residual = torch.where(frame_better, new_residual, best_residual)
            best_rotated = torch.where(frame_better, new_rotated, best_rotated)
            best_cost = torch.where(better, new_cost, best_cost)
        accept = best_cost < cost
        improvement = ((cost - best_cost) / cost.clamp_min(1e-12)).clamp_min(0)
        state, residual, rotated, cost = best, best_residual, best_rotated, best_cost
        damping = torch.where(accept, damping * 0.3, damping * 5.0).clamp(1e-7, 1e7)
        if on_iteration is not None:
            on_iteration(iteration)
        if bool(accept.all()) and float(improvement.max()) < 1e-7:
            logger.debug("LM converged after %d iterations", iteration + 1)
            break
    return state


def _project_expression(problem: _Problem, expression: torch.Tensor) -> torch.Tensor:
    """Project onto the expression constraints: clamp to [0,1], then mouthClose <= jawOpen."""
    expression = expression.clamp(0.0, 1.0)
    if problem.coupled_expressions is not None:
        close, jaw = problem.coupled_expressions
        expression[:, close] = torch.minimum(expression[:, close], expression[:, jaw])
    return expression


def _to_result(
    state: _State,
    problem: _Problem,
    centre: torch.Tensor,
    iod: torch.Tensor,
    model: ICTFaceModel,
    dtype: torch.dtype,
) -> Fit3DMMResult:
    scale = iod * state.log_scale.exp()
    translation = torch.stack(
        [centre[:, 0] + iod * state.translation[:, 0], centre[:, 1] - iod * state.translation[:, 1]], -1
    )
    return Fit3DMMResult(
        identity=state.identity[problem.group].to(dtype),
        expression=state.expression.to(dtype),
        angles=matrix_to_angles(state.rotation).to(dtype),
        scale=scale.to(dtype),
        translation=translation.to(dtype),
        identity_index=problem.group.clone(),
        model=model,
    )
