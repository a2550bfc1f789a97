"""Frames per second of detect + align + paste-back on carphone_pristine.mp4 (CPU unless told otherwise).

.venv/bin/python scripts/bench_faces.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests"))

from facecontrol import model_files  # noqa: E402
from facecontrol.face import align  # noqa: E402
from facecontrol.face.detect_mediapipe import MediaPipeFaceDetector  # noqa: E402
from facecontrol.face.paste import crop_area_mask, paste_back  # noqa: E402
from facecontrol.face.select import Selection, detect_face_set  # noqa: E402

from media import load_video_rgb  # noqa: E402


def run_once(frames: np.ndarray, detector) -> dict[str, float]:
    t0 = time.perf_counter()
    faces = detect_face_set(frames, detector, Selection())
    t1 = time.perf_counter()
    crop = align.ffhq_crop(faces.lm68(), frames.shape[1:3], 256, smooth=True)
    crops = align.warp_frames(frames, crop.forward, 256)
    t2 = time.perf_counter()
    paste_back(frames.astype(np.float32), crops.astype(np.float32), crop, crop_area_mask(256)[None], 16)
    t3 = time.perf_counter()
    return {"detect": t1 - t0, "align": t2 - t1, "paste": t3 - t2, "total": t3 - t0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    frames = load_video_rgb("carphone_pristine.mp4")
    detector = MediaPipeFaceDetector(model_files.resolve("mediapipe/face_landmarker.task", {}))
    run_once(frames[:5], detector)  # warm-up
    runs = [run_once(frames, detector) for _ in range(args.repeat)]
    n = len(frames)
    best = min(runs, key=lambda r: r["total"])
    print(f"carphone_pristine.mp4: {n} frames of {frames.shape[2]}x{frames.shape[1]}, best of {args.repeat} runs")
    for stage in ("detect", "align", "paste", "total"):
        print(f"  {stage:7s} {best[stage]:7.3f} s  {n / best[stage]:8.1f} frames/s")
    detector.close()


if __name__ == "__main__":
    main()
