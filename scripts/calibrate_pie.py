"""Pick PIE's energy weights on a folder of portraits by a stated criterion.

    .venv/bin/python scripts/calibrate_pie.py --generator comfyui/models/stylegan2/ffhq.pkl --portraits crops/ \
        --vgg comfyui/models/stylegan2/vgg16-397923af.pth --steps-w 200 --steps-wplus 100 --out weights.json

Criterion: each candidate weight set embeds every portrait (PIE Embed's W then W+ schedule, shortened by
``--steps-w``/``--steps-wplus``); its score is the mean, over the portraits, of the reconstruction error of the
embedded image measured with fixed weights whatever the candidate: pixel L2 + VGG-16 perceptual distance
(when ``--vgg`` is given) + the squared landmark error of the 3DMM regressor (in image widths, x10). The lowest
score wins; the table of all candidates and the winner are written to ``--out`` (JSON) and logged. Candidates
are the product of ``--perceptual``, ``--recognition`` and ``--landmark`` values (comma-separated); the other
weights keep their defaults. The pack's defaults (pipelines/pie/energies.py PIEWeights) are ours: PIE's are
not public; this script is how to set them for a generator and a kind of portrait.

Portraits must be FFHQ-aligned crops (Align and Crop Faces, ffhq); they are resized to the generator's size.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from facecontrol.pipelines import pie

log = logging.getLogger("calibrate_pie")
SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def read_portraits(folder: Path, limit: int = 0) -> torch.Tensor:
    """(N,3,S,S) [-1,1] from the square images of ``folder`` (sorted; the first ``limit`` when > 0)."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES)
    if limit:
        files = files[:limit]
    if not files:
        raise FileNotFoundError(f"no portraits ({', '.join(SUFFIXES)}) in {folder}")
    images = []
    for path in files:
        rgb = np.asarray(Image.open(path).convert("RGB"), np.float32) / 127.5 - 1
        if rgb.shape[0] != rgb.shape[1]:
            raise ValueError(f"{path}: portraits must be square FFHQ crops, got {rgb.shape[1]}x{rgb.shape[0]}")
        images.append(torch.from_numpy(rgb).permute(2, 0, 1))
    size = max(image.shape[-1] for image in images)
    return torch.stack(
        [torch.nn.functional.interpolate(i[None], size=(size, size), mode="bilinear")[0] for i in images]
    )


def reconstruction_error(models: pie.PIEModels, target: torch.Tensor, w_plus: torch.Tensor) -> torch.Tensor:
    """(B,) the fixed criterion: pixel L2 + VGG distance (if a perceptual net is loaded) + 10 x landmark error."""
    with torch.no_grad():
        target = pie.make_target(models, target)
        image = pie.synthesize(models.generator, w_plus)
        error = (target.image - image).square().flatten(1).mean(1)
        if models.perceptual is not None:
            error = error + pie.perceptual_distance(target.perceptual, models.perceptual(image))
        size = image.shape[-1]
        landmarks = models.formation.image_landmarks
        error = error + 10 * ((landmarks(image) - landmarks(target.image)) / size).square().sum(-1).mean(-1)
    return error


def calibrate(
    models: pie.PIEModels, portraits: torch.Tensor, candidates: list[pie.PIEWeights], config: pie.EmbedConfig
) -> list[dict]:
    """Embed the portraits with every candidate; rows {weights, score, per_portrait} sorted by score (best first)."""
    rows = []
    for weights in candidates:
        result = pie.embed(models, portraits, replace(config, weights=weights))
        errors = reconstruction_error(models, portraits, result.w_plus)
        rows.append({"weights": asdict(weights), "score": float(errors.mean()), "per_portrait": errors.tolist()})
        log.info("%s: score %.5f", asdict(weights), rows[-1]["score"])
    return sorted(rows, key=lambda row: row["score"])


def candidate_weights(perceptual: list[float], recognition: list[float], landmark: list[float]) -> list[pie.PIEWeights]:
    return [
        pie.PIEWeights(perceptual=p, recognition=r, recognition_edit=r, landmark=lm)
        for p, r, lm in itertools.product(perceptual, recognition, landmark)
    ]


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> None:
    import train_rignet

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    train_rignet.add_model_arguments(parser)
    parser.add_argument("--portraits", type=Path, required=True, help="folder of FFHQ-aligned square crops")
    parser.add_argument("--limit", type=int, default=0, help="use the first N portraits (0: all)")
    parser.add_argument("--vgg", type=Path, default=None, help="torchvision vgg16-397923af.pth (E_synth's Phi)")
    parser.add_argument("--steps-w", type=int, default=200)
    parser.add_argument("--steps-wplus", type=int, default=100)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--optimizer", choices=pie.OPTIMIZERS, default="adam")
    parser.add_argument("--perceptual", default="0.1,1,3")
    parser.add_argument("--recognition", default="0", help="needs a recognition network; 0 without one")
    parser.add_argument("--landmark", default="1,10")
    parser.add_argument("--out", type=Path, required=True, help="JSON with the ranked candidates")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    device = torch.device(args.device)
    models = train_rignet.build_models(args, device)
    if args.vgg:
        from facecontrol.models.checkpoint import read_state
        from facecontrol.models.vgg_perceptual import load_vgg_perceptual

        models = replace(models, perceptual=load_vgg_perceptual(read_state(args.vgg)).to(device))
    portraits = read_portraits(args.portraits, args.limit).to(device)
    config = pie.EmbedConfig(steps_w=args.steps_w, steps_wplus=args.steps_wplus, lr=args.lr, optimizer=args.optimizer)
    rows = calibrate(
        models,
        portraits,
        candidate_weights(_floats(args.perceptual), _floats(args.recognition), _floats(args.landmark)),
        config,
    )
    args.out.write_text(
        json.dumps(
            {
                "criterion": "pixel L2 + VGG distance + 10 x landmark error after embedding",
                "best": rows[0]["weights"],
                "candidates": rows,
            },
            indent=1,
        )
    )
    log.info("best %s (score %.5f); wrote %s", rows[0]["weights"], rows[0]["score"], args.out)


if __name__ == "__main__":
    main()
