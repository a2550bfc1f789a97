"""Control-image flicker of Face-Adapter's video path per 3DMM backend, with and without the temporal smoothing.

The driver is the real carphone video (its first N frames), the source the astronaut; the nodes run in this
process on CPU as the video workflow wires them (Detect Faces with tracking, Align and Crop Faces 512 for the
driver, Fit 3DMM with one shared identity, Recombine, Project 3DMM Landmarks, Adapting-Area Mask, Spatial
Control). "smoothed" is the workflow's setting: the driver's 512 crops smoothed (centre sigma 1, size sigma 3
frames) and Fit 3DMM's smooth_sigma 1.5; "raw" turns both off.

ict_facekit runs the open ICT-FaceKit export (FACE_ICT_DIR). bfm_d3dfr runs the d3dfr regressor with FILLED weights
(tests/filled_weights/spatial.py) and the golden fixture's synthetic BFM, as no release file is here: its numbers
show what the crop, canvas and coefficient smoothing do to the drawing, not the real regressor's own jitter.
The mask is the geometric one for both, so the control image differs only through the 3DMM path.

Printed: the mean absolute frame-to-frame change of the landmark image and of the control image (0..255), and
the mean frame-to-frame displacement and second difference (jitter) of the 70 drawn points in 512-crop pixels.

    .venv/bin/python scripts/bench_fa_flicker.py [--frames 64] [--models comfyui/models]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "scripts")]
log = logging.getLogger("bench_fa_flicker")


def _comfy_in_process() -> None:
    from comfy_client import comfyui_dir

    sys.path.insert(0, str(comfyui_dir()))
    import comfy.cli_args

    comfy.cli_args.args.cpu = not torch.cuda.is_available()


def _model_folders(root: Path, fill: bool = True) -> None:
    """The model tree registered with ComfyUI: by default a temporary one with the filled spatial weights and the
    ICT export; with --models, the user's own (real d3dfr and BFM, if present there)."""
    import folder_paths

    from facecontrol.nodes.common import register_model_folders

    from filled_weights import spatial
    from media import ict_facekit_dir

    if fill:
        spatial.install(root)
    ict = root / "face_3dmm" / "ict_facekit"
    ict.mkdir(parents=True, exist_ok=True)
    for name in ("face_model.npz", "landmarks_model.npz"):
        if not (ict / name).exists():
            os.symlink(ict_facekit_dir() / name, ict / name)
    register_model_folders()
    for key in ("face_adapter", "face_3dmm", "insightface"):
        (root / key).mkdir(exist_ok=True)
        exts = folder_paths.folder_names_and_paths[key][1]
        folder_paths.folder_names_and_paths[key] = ([str(root / key)], exts)


def _image(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frames).float() / 255.0


def _points_motion(points: np.ndarray) -> tuple[float, float]:
    """Mean displacement of the points between frames and mean second difference, in crop pixels."""
    step = np.linalg.norm(np.diff(points, axis=0), axis=-1).mean()
    jitter = np.linalg.norm(np.diff(points, n=2, axis=0), axis=-1).mean()
    return float(step), float(jitter)


def run(frames: np.ndarray, source: np.ndarray, backend: str, smoothed: bool) -> dict[str, float]:
    from facecontrol.nodes import face_nodes as fn
    from facecontrol.nodes import spatial_nodes as sn
    from facecontrol.pipelines.face_adapter import flicker

    video, photo = _image(frames), _image(source[None])
    driver_faces = fn.DetectFaces.execute(
        video, "mediapipe", "largest", 0, "left-right", 0.5, 0.5, True, "use nearest frame"
    ).args[0]
    source_faces = fn.DetectFaces.execute(
        photo, "mediapipe", "largest", 0, "left-right", 0.5, 0.5, False, "error"
    ).args[0]
    chain = "one warp"
    crops512, crop = fn.AlignFaces.execute(
        video, driver_faces, "faceadapter512", 512, smoothed, 1.0, 3.0, 0.81, "constant", chain
    ).args
    base, base_crop = fn.AlignFaces.execute(
        photo, source_faces, "faceadapter512", 512, False, 1.0, 3.0, 0.81, "constant", chain
    ).args
    start = time.time()
    driver_fit = sn.Fit3DMM.execute(video, driver_faces, backend, "shared over frames", 1.5 if smoothed else 0.0, chain)
    source_fit = sn.Fit3DMM.execute(photo, source_faces, backend, "per frame", 0.0, chain)
    fit_s = time.time() - start
    mixed = sn.Recombine3DMM.execute(source_fit.args[0], driver_fit.args[0], "expression, pose and gaze (Face-Adapter)")
    landmark_image, landmarks = sn.ProjectLandmarks.execute(mixed.args[0], crop).args
    mask, _ = sn.AdaptingMask.execute(
        "reenactment", "geometric", base, landmark_image, landmarks, source_faces, base_crop
    ).args
    control = sn.SpatialControl.execute(landmark_image, base, mask).args[0]
    step, jitter = _points_motion(landmarks.points)
    return {
        "landmark image": flicker(landmark_image),
        "control image": flicker(control),
        "points step px": step,
        "points jitter px": jitter,
        "fit s": fit_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument(
        "--models",
        type=Path,
        help="a ComfyUI models folder with the real face_adapter/third_party/d3dfr_res50_nofc.pth and "
        "BFM_model_front.mat (default: filled weights in a temporary folder)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    _comfy_in_process()
    from media import load_rgb, load_video_rgb

    frames = load_video_rgb("carphone_pristine.mp4", args.frames)
    source = load_rgb("astronaut.png")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        _model_folders(args.models or Path(tmp), fill=args.models is None)
        for backend in ("ict_facekit", "bfm_d3dfr"):
            for smoothed in (False, True):
                rows.append((backend, smoothed, run(frames, source, backend, smoothed)))
    print(f"carphone_pristine.mp4, {len(frames)} frames, source astronaut.png, geometric mask, CPU")
    print(
        "| 3DMM backend | weights | smoothing | landmark image flicker | control image flicker "
        "| points step px | points jitter px | fit s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for backend, smoothed, r in rows:
        bfm_weights = f"from {args.models}" if args.models else "filled d3dfr, synthetic BFM"
        weights = "ICT-FaceKit export (real)" if backend == "ict_facekit" else bfm_weights
        label = "crops + sigma 1.5" if smoothed else "off"
        print(
            f"| {backend} | {weights} | {label} | {r['landmark image']:.3f} | {r['control image']:.3f} "
            f"| {r['points step px']:.3f} | {r['points jitter px']:.3f} | {r['fit s']:.1f} |"
        )


if __name__ == "__main__":
    main()
