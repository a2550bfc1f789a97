"""Train RigNet (StyleRig) self-supervised for one StyleGAN2 generator and one 3DMM backend.

    .venv/bin/python scripts/train_rignet.py --generator comfyui/models/stylegan2/ffhq.pkl \
        --out comfyui/models/rignet/ffhq_rignet.safetensors --steps 20000

``--face-model ict_facekit`` (default) uses the open ICT-FaceKit mesh; ``--face-model bfm_deep3dfacerecon`` the
BFM (``--bfm``) with Deep3DFaceRecon's regressor (``--d3dfr``, epoch_20.pth) and, when given,
``--standard-landmarks`` (similarity_Lm3D_all.mat). A RigNet only works with the face model it was trained for.

Each step draws style-mixed W+ latents w and v (each joins up to ``--mixing`` separately sampled w across
layers, as StyleRig trains) and, for each group tau (``--taus``: pose, expression, illumination, cycled),
minimises StyleRig's losses: reconstruction (RigNet(w, theta_w^tau) = w), the rendered edit loss
([theta_v^not-tau, theta^^tau] rendered reproduces I_v, photometric under the face mask plus landmarks) and
the rendered consistency (cycle) loss ([theta^^not-tau, theta_w^tau] reproduces I_w), theta^ regressed from
the image of RigNet(w, theta_v^tau). ``--layers`` (ours) limits the W+ layers each group's RigNet may
change: ``all`` (StyleRig's, the default), ``generator`` (the generator's own group layers: StyleGAN's
coarse/middle/fine split, or the face generator's construction) or ``pose=0-3;expression=4-7``.
``--parameter-weight`` and ``--image-weight`` add the pack's own losses (off by default). Every weight is an option (``--<name>-weight``); ``--schedule`` sets the learning-rate
schedule (constant, cosine to 0, or step: x0.1 at 2/3). Losses are logged every ``--log-every`` steps; the bundle is saved (safetensors, loadable by the Load RigNet node) and a
``<out>.state.pt`` with the optimiser state lets ``--resume`` continue. Uses the GPU when there is one.
"""

from __future__ import annotations

import argparse
import logging
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import torch

from facecontrol.models.rignet import RigNetBundle, load_rignet, save_rignet
from facecontrol.pipelines import pie

log = logging.getLogger("train_rignet")
WEIGHT_HELP = {
    "reconstruction": "RigNet(w, theta_w) = w",
    "edit": "StyleRig's rendered edit loss (against I_v)",
    "consistency": "StyleRig's rendered cycle-consistency loss (against I_w)",
    "parameter": "ours: parameter-space edit and keep distances",
    "image": "ours: edited image against the render of [theta_w^not-tau, theta_v^tau]",
    "photo": "photometric weight inside the rendered losses",
    "landmark": "landmark weight inside the rendered losses",
}


SCHEDULES = ("constant", "cosine", "step")


def learning_rate(lr: float, step: int, total: int, schedule: str = "constant") -> float:
    """The rate at ``step`` of ``total``: constant, cosine to 0, or step (x0.1 from 2/3 of the run)."""
    if schedule == "cosine":
        return lr * 0.5 * (1 + math.cos(math.pi * min(step / max(total, 1), 1.0)))
    if schedule == "step":
        return lr * (0.1 if step >= 2 * total / 3 else 1.0)
    return lr


def train(
    models: pie.PIEModels,
    bundle: RigNetBundle,
    steps: int,
    batch: int = 4,
    lr: float = 1e-4,
    taus: tuple[str, ...] = ("pose", "expression", "illumination"),
    seed: int = 0,
    weights: pie.RigNetLossWeights | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    start_step: int = 0,
    on_log: Callable[[int, dict[str, float]], None] | None = None,
    log_every: int = 50,
    mixing: int = 5,
    schedule: str = "constant",
    total_steps: int | None = None,
) -> tuple[list[dict[str, float]], torch.optim.Optimizer]:
    """Run ``steps`` optimisation steps; returns the per-step losses and the optimiser (for saving)."""
    weights = weights or pie.RigNetLossWeights()
    bundle.train().requires_grad_(True)
    optimizer = optimizer or torch.optim.Adam(bundle.parameters(), lr=lr)
    rng = torch.Generator().manual_seed(seed + start_step)
    total = total_steps or start_step + steps
    history = []
    for step in range(start_step, start_step + steps):
        tau = taus[step % len(taus)]
        w_plus = pie.sample_mixed_w_plus(models.generator, batch, rng, max_sources=mixing)
        v_plus = pie.sample_mixed_w_plus(models.generator, batch, rng, max_sources=mixing)
        losses = pie.rignet_losses(models, bundle, tau, w_plus, v_plus, weights)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(lr, step, total, schedule)
        optimizer.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        optimizer.step()
        record = {name: float(value.detach()) for name, value in losses.items()}
        record["tau"] = tau
        history.append(record)
        if on_log is not None and (step + 1) % log_every == 0:
            on_log(step + 1, record)
    bundle.eval().requires_grad_(False)
    return history, optimizer


def build_models(args: argparse.Namespace, device: torch.device) -> pie.PIEModels:
    from facecontrol.face.ict_model import load_ict_model
    from facecontrol.models.dva_face_encoder import load_landmark_net
    from facecontrol.models.stylegan2 import load_stylegan2

    generator = load_stylegan2(args.generator)
    info = generator.load_info
    log.info("generator %s: %d px, %d W+ layers", args.generator, info["resolution"], info["num_ws"])
    landmark_net = load_landmark_net(args.landmark_net)
    if args.face_model == "bfm_deep3dfacerecon":
        formation = bfm_formation(args, landmark_net)
    else:
        formation = pie.ICTFaceFormation(load_ict_model(args.ict), landmark_net)
    log.info("face model %s: parameter sizes %s", formation.name, formation.tau_dims)
    return pie.PIEModels(generator.to(device), formation.eval().requires_grad_(False).to(device))


def bfm_formation(args: argparse.Namespace, landmark_net: torch.nn.Module) -> pie.FaceFormation:
    from facecontrol.face.bfm import BFMProjector, load_standard_landmarks
    from facecontrol.models.d3dfr import load_deep3dfacerecon
    from facecontrol.pipelines.pie.bfm import BFMFaceFormation

    standard = load_standard_landmarks(args.standard_landmarks) if args.standard_landmarks else None
    return BFMFaceFormation(BFMProjector(args.bfm), load_deep3dfacerecon(args.d3dfr), landmark_net, standard)


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The generator and face-model options (shared with scripts/calibrate_pie.py)."""
    parser.add_argument(
        "--generator", type=Path, required=True, help="rosinality .pt, NVlabs .pkl or a face generator .safetensors"
    )
    parser.add_argument("--face-model", choices=("ict_facekit", "bfm_deep3dfacerecon"), default="ict_facekit")
    parser.add_argument("--ict", type=Path, default=Path("comfyui/models/face_3dmm/ict_facekit/face_model.npz"))
    parser.add_argument("--bfm", type=Path, default=Path("comfyui/models/face_3dmm/BFM/BFM_model_front.mat"))
    parser.add_argument("--d3dfr", type=Path, default=Path("comfyui/models/face_3dmm/deep3dfacerecon/epoch_20.pth"))
    parser.add_argument("--standard-landmarks", type=Path, default=None, help="similarity_Lm3D_all.mat (optional)")
    parser.add_argument(
        "--landmark-net",
        type=Path,
        default=Path("comfyui/models/dva/pretrained_models/mobilenet_224_model_best_gdconv_external.pth.tar"),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser)
    parser.add_argument("--out", type=Path, required=True, help="RigNet .safetensors to write")
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--code-dim", type=int, default=32)
    parser.add_argument("--taus", default="pose,expression,illumination")
    for name, default in asdict(pie.RigNetLossWeights()).items():
        parser.add_argument(f"--{name}-weight", type=float, default=default, help=WEIGHT_HELP.get(name))
    parser.add_argument(
        "--layers",
        default="all",
        help="W+ layers each group's RigNet edits: all (StyleRig), generator, or pose=0-3;expression=4-7",
    )
    parser.add_argument("--mixing", type=int, default=5, help="style mixing: up to this many w per W+ (1: none)")
    parser.add_argument("--schedule", choices=SCHEDULES, default="constant", help="learning-rate schedule")
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--save-every", type=int, default=1000)
    parser.add_argument("--resume", action="store_true", help="continue from <out> and <out>.state.pt")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    device = torch.device(args.device)
    models = build_models(args, device)
    taus = tuple(t.strip() for t in args.taus.split(",") if t.strip())
    state_path = args.out.with_name(args.out.name + ".state.pt")
    start = 0
    if args.resume and args.out.is_file():
        bundle = load_rignet(args.out).to(device)
        start = (
            int(torch.load(state_path, map_location="cpu", weights_only=True)["step"]) if state_path.is_file() else 0
        )
        log.info("resuming %s at step %d", args.out, start)
    else:
        dims = {tau: models.formation.tau_dims[tau] for tau in taus}
        layers = pie.parse_rig_layers(args.layers, models.generator, taus)
        bundle = RigNetBundle(models.generator.num_ws, models.generator.w_dim, dims, args.code_dim, layers).to(device)
        log.info("edited layers per group: %s", bundle.tau_layers)
    optimizer = torch.optim.Adam(bundle.parameters(), lr=args.lr)
    if args.resume and state_path.is_file():
        optimizer.load_state_dict(torch.load(state_path, map_location="cpu", weights_only=True)["optimizer"])
    weights = pie.RigNetLossWeights(
        **{name: getattr(args, f"{name}_weight") for name in asdict(pie.RigNetLossWeights())}
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    step = start
    while step < args.steps:
        chunk = min(args.save_every, args.steps - step)
        _, optimizer = train(
            models,
            bundle,
            chunk,
            args.batch,
            args.lr,
            taus,
            args.seed,
            weights,
            optimizer,
            step,
            on_log=lambda s, r: log.info("step %d %s (%.1f steps/s)", s, r, (s - start) / (time.time() - started)),
            log_every=args.log_every,
            mixing=args.mixing,
            schedule=args.schedule,
            total_steps=args.steps,
        )
        step += chunk
        save_rignet(
            bundle, args.out, {"generator": str(args.generator), "steps": str(step), "face_model": args.face_model}
        )
        torch.save({"step": step, "optimizer": optimizer.state_dict()}, state_path)
        log.info("saved %s at step %d", args.out, step)


if __name__ == "__main__":
    main()
