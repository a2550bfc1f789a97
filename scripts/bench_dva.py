"""DVA benchmarks on the CPU (or a GPU with --device cuda). Prints one JSON line per measurement.

    .venv/bin/python scripts/bench_dva.py memory  [--frames 50 200 1000]   # streamed peak RSS vs length
    .venv/bin/python scripts/bench_dva.py recon   [--steps 2 5 10 20 50]   # s=0 reconstruction vs steps
    .venv/bin/python scripts/bench_dva.py speed   [--steps 20 100]         # frames/s, batching speed-up
    .venv/bin/python scripts/bench_dva.py clip    [--iterations 3]         # CLIP edit: set-up, s/iteration

Weights: --checkpoint PATH (the released epoch=51-step=1000000.ckpt), else the test checkpoint of
tests/filled_weights/dva.py (filled values, released encoders, 32-channel UNet in the released layout)
written into a temporary folder; the CLIP edit takes --clip PATH (OpenAI's ViT-B-16.pt archive), else the
test archive (64 wide, one layer). Frames are carphone's FFHQ crops (recon) or synthetic (memory, speed).
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


def _filled_weights():
    spec = importlib.util.spec_from_file_location(
        "dva_filled_weights", REPO_ROOT / "tests" / "filled_weights" / "dva.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def filled_test_file(name: str) -> str:
    """The test weights' file `name` ("CKPT" or "CLIP"), written once into a temporary folder."""
    module = _filled_weights()
    root = Path(tempfile.gettempdir()) / "facecontrol_bench_dva"
    if not (root / module.CKPT).is_file() or not (root / module.CLIP).is_file():
        module.install(root)
    return str(root / getattr(module, name))


def filled_released_size_files() -> tuple[str, str]:
    """A checkpoint with the released UNet width (128 channels) and an OpenAI ViT-B/16 CLIP (safetensors in
    OpenAI's key layout), both filled deterministically: the released files' cost without the files."""
    from open_clip.model import CLIP as OpenClip
    from open_clip.model import CLIPTextCfg, CLIPVisionCfg
    from safetensors.torch import save_file

    module = _filled_weights()
    root = Path(tempfile.gettempdir()) / "facecontrol_bench_dva_released_size"
    ckpt, clip = root / module.CKPT, root / "clip" / "ViT-B-16.safetensors"
    if not ckpt.is_file():
        module.TEST_UNET = dict(module.TEST_UNET, model_channels=128)
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        torch.save(module._lightning(module.dva_state()), ckpt)
    if not clip.is_file():
        with torch.device("meta"):
            model = OpenClip(
                512,
                CLIPVisionCfg(layers=12, width=768, patch_size=16, image_size=224),
                CLIPTextCfg(context_length=77, vocab_size=49408, width=512, heads=8, layers=12),
                quick_gelu=True,
            )
        state = module._fill().fill_state_dict(module._shapes(model), 5)
        state["logit_scale"] = torch.tensor(4.6052)
        clip.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in state.items()}, str(clip))
    return str(ckpt), str(clip)


def networks(args):
    if args.released_size and not args.checkpoint:
        args.checkpoint, args.clip = filled_released_size_files()
        args.weights = "filled, released sizes (128-channel UNet, ViT-B/16)"
    unet, encoder = load_dva_networks(args.checkpoint or filled_test_file("CKPT"))
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
    try:
        faces = detect_face_set(frames, detector, Selection())
    finally:
        detector.close()
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


# ---------------------------------------------------------------- CLIP edit


def clip_edit(args) -> None:
    """The authors' CLIP edit on carphone's frame 0: the one-off set-up, then seconds per Adam iteration."""
    from facecontrol.models.clip_archive import load_openai_clip
    from facecontrol.pipelines import dva_clip

    unet, encoder = networks(args)
    clip_model = load_openai_clip(args.clip or filled_test_file("CLIP")).to(args.device).float()
    for module in (unet, encoder, clip_model):
        dva_clip.make_autograd_ready(module)
    frame0 = carphone_crops(1).to(args.device)
    settings = dva_clip.ClipEditSettings(
        target_text="face with beard", iterations=args.iterations, levels_per_pass=args.levels_per_pass
    )
    start = time.perf_counter()
    state = dva_clip.prepare_clip_edit(unet, encoder, clip_model, frame0, settings)
    sync(args.device)
    setup = time.perf_counter() - start
    edit_code = torch.nn.Parameter(state.z0.clone())
    optimiser = torch.optim.Adam([edit_code], lr=settings.lr)
    seconds = []
    for _ in range(settings.iterations):
        start = time.perf_counter()
        optimiser.zero_grad()
        dva_clip.clip_edit_backward(unet, encoder, state, edit_code, settings)
        optimiser.step()
        sync(args.device)
        seconds.append(time.perf_counter() - start)
    emit(
        {
            "bench": "clip_edit",
            "weights": args.weights,
            "levels": settings.steps,
            "levels_per_pass": settings.levels_per_pass or settings.steps,
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "setup_seconds": round(setup, 1),
            "iterations": len(seconds),
            "seconds_per_iteration": [round(x, 2) for x in seconds],
            "authors_2000_iterations_hours": round(2000 * float(np.median(seconds)) / 3600, 1) if seconds else None,
            "threads": args.threads,
        }
    )


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["memory", "memory-one", "recon", "speed", "clip"])
    parser.add_argument("--frames", type=int, nargs="+", default=None)
    parser.add_argument("--steps", type=int, nargs="+", default=None)
    parser.add_argument("--chunk", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--size", type=int, default=256, help="synthetic frame size (memory bench)")
    parser.add_argument("--clip", default=None, help="OpenAI CLIP archive (clip bench)")
    parser.add_argument(
        "--released-size", action="store_true", help="filled weights at the released sizes instead of the test ones"
    )
    parser.add_argument("--levels-per-pass", type=int, default=0, help="CLIP edit levels per UNet pass (0: all)")
    parser.add_argument("--iterations", type=int, default=3, help="CLIP edit iterations to time (clip bench)")
    parser.add_argument("--batch-frames", type=int, default=8, help="frames for the batching comparison (speed)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.weights = args.checkpoint or "filled test weights (32-channel UNet, 64-wide CLIP)"
    defaults = {
        "memory": ([50, 200, 1000], [2]),
        "memory-one": ([50], [2]),
        "recon": ([2], [2, 5, 10, 20, 50]),
        "speed": ([8], [20, 100]),
        "clip": ([1], [5]),
    }
    frames, steps = defaults[args.what]
    args.frames = args.frames or frames
    args.steps = args.steps or steps
    if args.what == "clip":  # the edit needs gradients
        clip_edit(args)
        return
    with torch.inference_mode():
        {"memory": memory, "memory-one": memory_one, "recon": recon, "speed": speed}[args.what](args)


if __name__ == "__main__":
    main()
