"""Benchmark PIE embedding: iterations per second (E_synth only, and all five energies with a RigNet) and the
time to bring E_synth below a target, on the astronaut's FFHQ crop.

    .venv/bin/python scripts/bench_pie.py                       # CPU, the 64 px test generator
    .venv/bin/python scripts/bench_pie.py --generator comfyui/models/stylegan2/ffhq.pkl \
        --landmark-net comfyui/models/dva/pretrained_models/mobilenet_224_model_best_gdconv_external.pth.tar \
        --vgg comfyui/models/stylegan2/vgg16-397923af.pth --device cuda

``--face-model bfm_deep3dfacerecon`` uses the BFM formation (``--d3dfr`` epoch_20.pth, ``--bfm``
BFM_model_front.mat; without them the test weights' ResNet-50 ReconNet and ICT-filled BFM file).
Without files it uses the CI test weights of tests/filled_weights/pie.py (64 px StyleGAN2-ADA, face-layout
landmark net) and random VGG weights: speed is what is measured, not quality.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]


def astronaut_crop(size: int) -> torch.Tensor:
    from skimage import data

    from facecontrol.face.align import ffhq_crop, warp_one
    from facecontrol.face.detect_mediapipe import MediaPipeFaceDetector
    from facecontrol.model_files import resolve

    image = data.astronaut()
    detector = MediaPipeFaceDetector(resolve("mediapipe/face_landmarker.task", {}))
    try:
        face = detector.detect(image)[0]
    finally:
        detector.close()
    crop = ffhq_crop(face.lm68[None], image.shape[:2], 256)
    pixels = warp_one(image, crop.forward[0], 256)
    tensor = torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1)[None].float() / 127.5 - 1
    return F.interpolate(tensor, size=(size, size), mode="bilinear", antialias=True)


def build_models(args) -> "pie.PIEModels":
    from facecontrol.face.ict_model import load_ict_model
    from facecontrol.models.dva_face_encoder import load_landmark_net
    from facecontrol.models.stylegan2 import load_stylegan2
    from facecontrol.models.vgg_perceptual import VGGPerceptual, load_vgg_perceptual
    from facecontrol.pipelines import pie

    sys.path.insert(0, str(REPO / "tests"))
    import media
    from filled_weights import pie as filled_weights

    generator = load_stylegan2(args.generator) if args.generator else filled_weights.tiny_generator()
    landmark_net = load_landmark_net(args.landmark_net or filled_weights.landmark_state())
    if args.face_model == "bfm_deep3dfacerecon":
        formation = bfm_formation(args, landmark_net, filled_weights)
    else:
        formation = pie.ICTFaceFormation(
            load_ict_model(args.ict or media.ict_facekit_dir() / "face_model.npz"), landmark_net
        )
    perceptual = load_vgg_perceptual(args.vgg) if args.vgg else VGGPerceptual()
    models = pie.PIEModels(
        generator, formation.eval().requires_grad_(False), None, perceptual.eval().requires_grad_(False)
    )
    for module in (models.generator, models.formation, models.perceptual):
        module.to(args.device)
    return models


def bfm_formation(args, landmark_net, filled_weights):
    import tempfile

    from facecontrol.face.bfm import BFMProjector
    from facecontrol.models.d3dfr import load_deep3dfacerecon
    from facecontrol.pipelines.pie.bfm import BFMFaceFormation

    bfm_path = args.bfm
    if bfm_path is None:
        bfm_path = Path(tempfile.mkdtemp()) / "BFM_model_front.mat"
        filled_weights.write_ict_bfm(bfm_path)
    regressor = load_deep3dfacerecon(args.d3dfr) if args.d3dfr else filled_weights.calibrated_regressor()
    return BFMFaceFormation(BFMProjector(bfm_path), regressor, landmark_net)


def run(models, image, config, rignet=None, target=None) -> dict:
    times = []
    reached = []
    start = time.perf_counter()

    def on_step(step, total, record, preview):
        if models.generator.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        if target is not None and not reached and record["synth"] <= target:
            reached.append(times[-1])

    result = pie.embed(models, image, config, rignet=rignet, on_step=on_step)
    steady = np.diff(times[2:]) if len(times) > 3 else np.diff(times)
    return {
        "it_per_s": 1.0 / float(np.median(steady)),
        "first_synth": result.history[0]["synth"],
        "last_synth": result.history[-1]["synth"],
        "time_to_target_s": reached[0] if reached else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generator", type=Path)
    parser.add_argument("--landmark-net", type=Path)
    parser.add_argument("--vgg", type=Path)
    parser.add_argument("--ict", type=Path)
    parser.add_argument("--face-model", choices=("ict_facekit", "bfm_deep3dfacerecon"), default="ict_facekit")
    parser.add_argument("--d3dfr", type=Path, help="Deep3DFaceRecon epoch_20.pth")
    parser.add_argument("--bfm", type=Path, help="BFM_model_front.mat")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument(
        "--target-synth", type=float, default=None, help="E_synth to reach (default: 90%% of the first step's value)"
    )
    args = parser.parse_args()
    global pie
    from facecontrol.models.rignet import RigNetBundle
    from facecontrol.pipelines import pie

    torch.manual_seed(0)
    models = build_models(args)
    generator = models.generator
    image = astronaut_crop(generator.resolution).to(args.device)
    print(
        f"device {args.device} ({torch.get_num_threads()} CPU threads), generator {generator.resolution} px, "
        f"{generator.num_ws} W+ layers, face model {models.formation.name}"
    )
    synth_only = pie.EmbedConfig(steps_w=args.steps, steps_wplus=args.steps)
    first = pie.embed(models, image, pie.EmbedConfig(steps_w=1, steps_wplus=0)).history[0]["synth"]
    target = args.target_synth if args.target_synth is not None else 0.9 * first
    numbers = run(models, image, synth_only, target=target)
    print(
        f"E_synth only (W then W+, {2 * args.steps} steps): {numbers['it_per_s']:.2f} it/s; "
        f"E_synth {numbers['first_synth']:.4g} -> {numbers['last_synth']:.4g}; "
        f"time to E_synth <= {target:.4g}: "
        + (f"{numbers['time_to_target_s']:.1f} s" if numbers["time_to_target_s"] is not None else "not reached")
    )
    rignet = RigNetBundle(generator.num_ws, generator.w_dim, models.formation.tau_dims).to(args.device).eval()
    full = run(models, image, pie.EmbedConfig(steps_w=args.steps // 2, steps_wplus=args.steps // 2), rignet=rignet)
    print(f"all five energies with a RigNet ({args.steps} steps): {full['it_per_s']:.2f} it/s")


if __name__ == "__main__":
    main()
