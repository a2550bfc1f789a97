"""Time and peak memory of one full five-energy PIE step (E_synth with VGG, E_identity, E_edit,
E_invariance, both recognition terms; forward and backward) at the FFHQ StyleGAN2 configuration.

    .venv/bin/python scripts/bench_pie_step.py --resolution 1024                    # plain fp32
    .venv/bin/python scripts/bench_pie_step.py --resolution 1024 --checkpointing    # synthesis checkpointed
    .venv/bin/python scripts/bench_pie_step.py --resolution 256 --precision bf16 --device cuda

The generator is a StyleGAN2-ADA FFHQ network (channel_base 32768, channel_max 512, 8 mapping layers) with
its own random initialisation, VGG-16 and IR-SE50 random, the ICT formation with the CI landmark net and an
untrained 3-group RigNet: the cost is what is measured, not quality. Peak memory: on CUDA
``torch.cuda.max_memory_allocated``; on CPU the highest resident set size sampled every 2 ms during the step,
minus the resident size before it (the activations and gradients of the step, not the weights).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
PAGE = 4096


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * PAGE


class PeakRSS:
    """Samples the resident set size in a thread while the block runs."""

    def __enter__(self) -> "PeakRSS":
        self.before = self.peak = rss_bytes()
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while self.running:
            self.peak = max(self.peak, rss_bytes())
            time.sleep(0.002)

    def __exit__(self, *exc) -> None:
        self.running = False
        self.thread.join()
        self.peak = max(self.peak, rss_bytes())


def build(args):
    from facecontrol.face.ict_model import load_ict_model
    from facecontrol.models.checkpoint import strip_prefix
    from facecontrol.models.dva_face_encoder import IdentityNet, LandmarkNet
    from facecontrol.models.precision import with_precision
    from facecontrol.models.rignet import RigNetBundle
    from facecontrol.models.stylegan2_nvlabs import Generator
    from facecontrol.pipelines import pie

    sys.path.insert(0, str(REPO / "tests"))
    from filled_weights import pie as filled_weights
    from media import ict_facekit_dir

    torch.manual_seed(0)
    generator = (
        Generator(
            z_dim=512,
            c_dim=0,
            w_dim=512,
            img_resolution=args.resolution,
            img_channels=3,
            mapping_kwargs={"num_layers": 8},
            synthesis_kwargs={"channel_base": 32768, "channel_max": 512, "num_fp16_res": 4, "conv_clamp": 256},
        )
        .eval()
        .requires_grad_(False)
    )
    generator.configure(gradient_checkpointing=args.checkpointing, compute_dtype=args.precision)
    landmark_net = LandmarkNet()
    landmark_net.backbone.load_state_dict(strip_prefix(filled_weights.landmark_state()))
    formation = pie.ICTFaceFormation(load_ict_model(ict_facekit_dir() / "face_model.npz"), landmark_net)
    recognition = with_precision(IdentityNet().eval().requires_grad_(False), args.precision)
    perceptual = with_precision(pie.VGGPerceptual().eval().requires_grad_(False), args.precision)
    models = pie.PIEModels(generator, formation.eval().requires_grad_(False), recognition, perceptual)
    rignet = RigNetBundle(generator.num_ws, generator.w_dim, formation.tau_dims).eval().requires_grad_(False)
    for module in (generator, formation, recognition, perceptual, rignet):
        module.to(args.device)
    return models, rignet


def one_step(models, rignet, target, w_plus, v_plus):
    from facecontrol.pipelines import pie

    w = w_plus.clone().requires_grad_(True)
    with pie.deterministic_backward():
        energies, _ = pie.pie_energies(models, target, w, pie.PIEWeights(), rignet, "pose", v_plus)
        loss = sum(e.sum() for e in energies.values())
        loss.backward()
    return {name: float(value.detach().mean()) for name, value in energies.items()}, w.grad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--checkpointing", action="store_true", help="gradient checkpointing of the synthesis")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=1, help="steps to time (the first is also the memory one)")
    args = parser.parse_args()
    from facecontrol.pipelines import pie

    models, rignet = build(args)
    generator = models.generator
    rng = torch.Generator().manual_seed(1)
    with torch.no_grad():
        image = generator.synthesis(generator.sample_ws(1, rng, 0.7)).clamp(-1, 1)
        target = pie.make_target(models, image)
    w_plus, v_plus = generator.mean_ws(1), generator.sample_ws(1, rng, 0.7)
    cuda = torch.device(args.device).type == "cuda"
    times = []
    for step in range(args.steps):
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        with PeakRSS() as rss:
            start = time.perf_counter()
            energies, _ = one_step(models, rignet, target, w_plus, v_plus)
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        if step == 0:
            peak = torch.cuda.max_memory_allocated() if cuda else rss.peak - rss.before
    result = {
        "device": args.device,
        "threads": torch.get_num_threads(),
        "resolution": args.resolution,
        "num_ws": generator.num_ws,
        "checkpointing": args.checkpointing,
        "precision": args.precision,
        "step_s": [round(t, 2) for t in times],
        "peak_gib": round(peak / 2**30, 3),
        "peak_kind": "cuda max_memory_allocated" if cuda else "CPU RSS above the pre-step level",
        "energies": {k: round(v, 5) for k, v in energies.items()},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
