"""DVA benchmarks on the CPU (or a GPU with --device cuda). Prints one JSON line per measurement.

    .venv/bin/python scripts/bench_dva.py memory  [--frames 50 200 1000]   # streamed peak RSS vs length
    .venv/bin/python scripts/bench_dva.py recon   [--steps 2 5 10 20 50]   # s=0 reconstruction vs steps
    .venv/bin/python scripts/bench_dva.py speed   [--steps 20 100]         # frames/s, batching speed-up

Weights: --checkpoint PATH (the released epoch=51-step=1000000.ckpt), else the test checkpoint of
tests/filled_weights/dva.py (filled values, released encoders, 32-channel UNet in the released layout)
written into a temporary folder. Frames are carphone's FFHQ crops (recon) or synthetic (memory, speed).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests"))

from facecontrol.models.dva_checkpoint import load_dva_networks  # noqa: E402
from facecontrol.pipelines import dva  # noqa: E402
from facecontrol.pipelines import video_metrics as vm  # noqa: E402


def filled_test_checkpoint() -> str:
    spec = importlib.util.spec_from_file_location(
        "dva_filled_weights", REPO_ROOT / "tests" / "filled_weights" / "dva.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    root = Path(tempfile.gettempdir()) / "facecontrol_bench_dva"
    module.install(root)
    return str(root / module.CKPT)


def networks(args):
    unet, encoder = load_dva_networks(args.checkpoint or filled_test_checkpoint())
    return unet.to(args.device), encoder.to(args.device)


def synthetic_frames(start: int, stop: int, size: int = 256) -> torch.Tensor:
    """Deterministic smooth frames in [-1,1]: a moving blob, so nothing is cached between reads."""
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    out = []
    for i in range(start, stop):
        c = 0.3 * np.sin(i / 10)
        blob = torch.exp(-((xx - c) ** 2 + yy**2) * 4)
        out.append(torch.stack([blob, 0.5 * blob + 0.2 * xx, 0.3 * yy]) * 2 - 1)
    return torch.stack(out)


def emit(record: dict) -> None:
    print(json.dumps(record), flush=True)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------- memory


def memory_one(args) -> None:
    unet, encoder = networks(args)
    schedule = dva.DDIMSchedule.from_steps(args.steps[0])
    base = peak_rss_mb()
    start = time.perf_counter()
    frames_out = 0
    read = lambda a, b: synthetic_frames(a, b, args.size)  # noqa: E731
    for _, out, _ in dva.stream_edit_video(
        unet, encoder, read, args.frames[0], schedule, chunk_size=args.chunk, device=args.device
    ):
        frames_out += len(out)  # a real consumer would write the chunk to a video file here
    emit(
        {
            "bench": "memory",
            "mode": "stream",
            "frames": frames_out,
            "size": args.size,
            "steps": len(schedule),
            "chunk": args.chunk,
            "threads": args.threads,
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "rss_after_load_mb": round(base, 1),
            "seconds": round(time.perf_counter() - start, 1),
        }
    )


def memory(args) -> None:
    for n in args.frames:  # one process per length: ru_maxrss is a per-process high-water mark
        cmd = [
            sys.executable,
            __file__,
            "memory-one",
            "--frames",
            str(n),
            "--steps",
            str(args.steps[0]),
            "--chunk",
            str(args.chunk),
            "--device",
            args.device,
            "--threads",
            str(args.threads),
            "--size",
            str(args.size),
        ]
        if args.checkpoint:
            cmd += ["--checkpoint", args.checkpoint]
        subprocess.run(cmd, check=True)


# ---------------------------------------------------------------- reconstruction vs steps


def carphone_crops(n: int) -> torch.Tensor:
    from facecontrol.face import align
    from facecontrol.face.detect_mediapipe import MediaPipeFaceDetector
    from facecontrol.face.select import Selection, detect_face_set

    from face_test_utils import mediapipe_model_path
    from media import load_video_rgb

    frames = load_video_rgb("carphone_pristine.mp4", max_frames=n)
    detector = MediaPipeFaceDetector(mediapipe_model_path())
    faces = detect_face_set(frames, detector, Selection())
    crop = align.ffhq_crop(faces.lm68(), frames.shape[1:3], 256, smooth=True)
    crops = align.warp_frames(frames, crop.forward, 256)
    return torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 127.5 - 1


def recon(args) -> None:
    unet, encoder = networks(args)
    frames = carphone_crops(args.frames[0]).to(args.device)
    target = (frames + 1) / 2
    for steps in args.steps:
        schedule = dva.DDIMSchedule.from_steps(steps)
        for solver, identity in (("ddim", "average"), ("dpm++2m", "average"), ("ddim", "per-frame")):
            start = time.perf_counter()
            latent = dva.encode_video(
                unet, encoder, frames, schedule, args.chunk, args.device, identity=identity, solver=solver
            )
            out = dva.decode_video(unet, encoder, latent, schedule, chunk_size=args.chunk, device=args.device)
            out = out.clamp(0, 1)
            emit(
                {
                    "bench": "recon",
                    "solver": solver,
                    "identity": identity,
                    "steps": len(schedule),
                    "frames": len(frames),
                    "mse": round(float(vm.mse(out, target).mean()), 5),
                    "ssim": round(float(vm.ssim(out, target).mean()), 4),
                    "ms_ssim": round(float(vm.ms_ssim(out, target).mean()), 4),
                    "seconds": round(time.perf_counter() - start, 1),
                }
            )


# ---------------------------------------------------------------- speed


def speed(args) -> None:
    unet, encoder = networks(args)
    n = args.batch_frames
    frames = synthetic_frames(0, n).to(args.device)
    with torch.no_grad():  # warm-up
        unet(frames[:1], torch.tensor([500], device=args.device), torch.zeros(1, 512, device=args.device))
    for chunk in (1, n):
        z = torch.zeros(n, 512, device=args.device)
        t = torch.full((n,), 500, device=args.device)
        start = time.perf_counter()
        with torch.no_grad():
            for i in range(0, n, chunk):
                unet(frames[i : i + chunk], t[i : i + chunk], z[i : i + chunk])
        sync(args.device)
        emit(
            {
                "bench": "unet_call",
                "chunk": chunk,
                "frames": n,
                "frames_per_second_per_call": round(n / (time.perf_counter() - start), 3),
            }
        )
    n = args.frames[0]
    frames = frames[:n]
    for steps in args.steps:
        schedule = dva.DDIMSchedule.from_steps(steps)
        start = time.perf_counter()
        latent = dva.encode_video(unet, encoder, frames, schedule, args.chunk, args.device)
        dva.decode_video(unet, encoder, latent, schedule, chunk_size=args.chunk, device=args.device)
        sync(args.device)
        seconds = time.perf_counter() - start
        emit(
            {
                "bench": "encode_decode",
                "steps": len(schedule),
                "frames": n,
                "chunk": args.chunk,
                "unet_calls_per_frame": 2 * len(schedule) - 1,
                "seconds": round(seconds, 1),
                "frames_per_second": round(n / seconds, 4),
            }
        )


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["memory", "memory-one", "recon", "speed"])
    parser.add_argument("--frames", type=int, nargs="+", default=None)
    parser.add_argument("--steps", type=int, nargs="+", default=None)
    parser.add_argument("--chunk", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--size", type=int, default=256, help="synthetic frame size (memory bench)")
    parser.add_argument("--batch-frames", type=int, default=8, help="frames for the batching comparison (speed)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    defaults = {
        "memory": ([50, 200, 1000], [2]),
        "memory-one": ([50], [2]),
        "recon": ([2], [2, 5, 10, 20, 50]),
        "speed": ([8], [20, 100]),
    }
    frames, steps = defaults[args.what]
    args.frames = args.frames or frames
    args.steps = args.steps or steps
    with torch.inference_mode():
        {"memory": memory, "memory-one": memory_one, "recon": recon, "speed": speed}[args.what](args)


if __name__ == "__main__":
    main()
