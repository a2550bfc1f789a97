"""Benchmark landmark-only ICT-FaceKit fitting of a video (frames per second, reprojection error).

Landmarks: a (N,68,2) .npy file of detected points (--landmarks), or a synthetic talking-head track
drawn from the model itself plus 1 px noise. Usage:
    python scripts/bench_fit_3dmm.py [--landmarks pts.npy] [--frames 120] [--threads 1] [--device cpu]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

from facecontrol.face.ict_fit import fit_landmarks, project_landmarks, reprojection_error
from facecontrol.face.ict_model import ICTFaceModel, load_ict_model

REPO_ROOT = Path(__file__).resolve().parents[1]


def synthetic_track(model: ICTFaceModel, frames: int, seed: int = 0) -> torch.Tensor:
    """(frames,68,2) px: one identity, slowly varying pose and mouth, 1 px landmark noise."""
    generator = torch.Generator().manual_seed(seed)
    time_axis = torch.linspace(0, 4 * np.pi, frames)
    identity = torch.randn(1, 100, generator=generator).expand(frames, -1)
    expression = torch.zeros(frames, 53)
    expression[:, model.expression_index("jawOpen")] = 0.4 * (1 + torch.sin(3 * time_axis)) / 2
    expression[:, model.expression_index("mouthSmile_L")] = 0.3
    angles = torch.stack([0.3 * torch.sin(time_axis), 0.1 * torch.cos(time_axis), 0.05 * torch.sin(2 * time_axis)], -1)
    scale = torch.full((frames,), 6.0)
    translation = torch.full((frames, 2), 256.0)
    points = project_landmarks(model, identity, expression, angles, scale, translation)
    return points + torch.randn(points.shape, generator=generator)


def time_fit(points: torch.Tensor, model: ICTFaceModel, repeats: int, **options) -> tuple[float, torch.Tensor]:
    fit_landmarks(points[:4], model, **options)  # warm-up
    if points.is_cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        result = fit_landmarks(points, model, **options)
    if points.is_cuda:
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats, reprojection_error(result, points)


def default_ict_dir() -> Path:
    sys.path.insert(0, str(REPO_ROOT / "tests"))
    from media import ict_facekit_dir

    return ict_facekit_dir()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ict-dir", type=Path, help="ICT-FaceKit export (default: tests/media.py ict_facekit_dir)")
    parser.add_argument("--landmarks", type=Path, help="(N,68,2) .npy of detected landmarks in pixels")
    parser.add_argument("--frames", type=int, default=120, help="synthetic track length")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave as is)")
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_ict_model((args.ict_dir or default_ict_dir()) / "landmarks_model.npz").to(args.device)
    if args.landmarks:
        points = torch.from_numpy(np.load(args.landmarks)).float()
    else:
        points = synthetic_track(model.cpu(), args.frames)
        model = model.to(args.device)
    points = points.to(args.device)
    print(
        f"device {args.device}, torch threads {torch.get_num_threads()}, {len(points)} frames, "
        f"{args.iterations} LM iterations"
    )
    for label, options in (("shared identity", {"shared_identity": True}), ("identity per frame", {})):
        seconds, errors = time_fit(points, model, args.repeats, iterations=args.iterations, **options)
        print(
            f"{label:20s} {seconds * 1000:8.1f} ms  {len(points) / seconds:7.1f} frames/s  "
            f"error mean {errors.mean() * 100:.2f}% IOD, max {errors.max() * 100:.2f}%"
        )


if __name__ == "__main__":
    main()
