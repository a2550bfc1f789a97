"""Write the pack's small 3DMM face generator (models/face_generator.py) as a STYLEGAN file for tests and demos.

    .venv/bin/python scripts/make_face_generator.py --out comfyui/models/stylegan2/ict_faces_128.safetensors

Load it with Load StyleGAN2; its faces are ICT-FaceKit renders whose true pose, expression and light are known.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from facecontrol.face.ict_model import load_ict_model
from facecontrol.models.face_generator import build_face_generator, save_face_generator

log = logging.getLogger("make_face_generator")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ict", type=Path, default=Path("comfyui/models/face_3dmm/ict_facekit/face_model.npz"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--identities", type=int, default=20, help="ICT identity shapes used (of 100)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    generator = build_face_generator(load_ict_model(args.ict), args.seed, args.resolution, args.identities)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_face_generator(generator, args.out)
    log.info("wrote %s (%d px, %d W+ layers)", args.out, generator.resolution, generator.num_ws)


if __name__ == "__main__":
    main()
