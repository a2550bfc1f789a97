"""Face-Adapter crop chains on the real photos: the authors' (frame -> 512 bilinear, 5 points found again on the
512 crop, that crop -> 256) against the one-warp chain (each crop straight from the frame, area pre-shrink).

No SCRFD file is available here, so the re-detection on the 512 crop uses mediapipe (the authors' face key);
"mapped points" isolates the resampling. Prints the markdown table of docs/BENCHMARKS.md.

    .venv/bin/python scripts/bench_fa_crop_chain.py
"""

import sys

import numpy as np

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1] / "tests"))
from facecontrol.face import align
from facecontrol.face.detect_mediapipe import MediaPipeFaceDetector
from facecontrol.face.face3dmm import arcface_canvas
from facecontrol.face.select import Selection, detect_face_set
from facecontrol.face.types import apply_affine, compose_affine, invert_affines

from face_test_utils import mediapipe_model_path
from media import load_rgb

det = MediaPipeFaceDetector(mediapipe_model_path(), max_faces=8)


def mp_redetect(crop):
    faces = det.detect(crop)
    if not faces:
        return None
    keys = [(f.box[2] - f.box[0]) * f.box[3] - f.box[1] for f in faces]
    return faces[int(np.argmax(keys))].lm5.astype(np.float32)


rows = []
for name, sel in [
    ("astronaut.png", Selection("largest")),
    ("astronaut.png x6", Selection("largest")),
    *[("t1.jpg", Selection("index", i)) for i in range(6)],
]:
    rgb = (
        load_rgb(name)
        if not name.endswith("x6")
        else __import__("cv2").resize(
            load_rgb(name[:-3]), None, fx=6, fy=6, interpolation=__import__("cv2").INTER_CUBIC
        )
    )
    fs = detect_face_set(rgb[None], det, sel, track=False)
    if fs.faces[0] is None:
        continue
    box = fs.boxes()[0]
    crop = align.faceadapter512_crop(fs.boxes(), fs.image_size)
    one512 = align.warp_one(rgb, crop.forward[0], 512)
    canvas = arcface_canvas(fs)[0]
    one256 = align.warp_one(rgb, canvas, 256)
    lm5 = fs.lm5()[0]
    res = {}
    for mode, fn in [
        ("mapped", lambda c, crop=crop, lm5=lm5: apply_affine(crop.forward[0], lm5).astype(np.float32)),
        ("redetected", mp_redetect),
    ]:
        c512, warp, found = align.authors_chain(rgb, crop.forward[0], lm5, fn)
        c256 = align.plain_warp(c512, warp, 256)
        comp = compose_affine(warp, crop.forward[0])
        # geometry: where the template points land in the frame, px
        tmpl = align.FACEADAPTER_TEMPLATE_256
        geo = np.abs(
            apply_affine(invert_affines(comp[None])[0], tmpl) - apply_affine(invert_affines(canvas[None])[0], tmpl)
        ).max()
        res[mode] = (np.abs(c256.astype(float) - one256).mean(), geo, found)
    d512 = np.abs(c512.astype(float) - one512).mean()
    scale = np.sqrt(abs(np.linalg.det(crop.forward[0][:, :2])))
    rows.append((name, sel.index, box[2] - box[0], scale, d512, *res["mapped"][:2], *res["redetected"]))
print(
    "| photo | face | box width px | 512 scale | 512 crop mean abs diff | 256 (mapped points) mean abs diff | geometry px | 256 (re-detected) mean abs diff | geometry px |"
)
print("|---|---|---|---|---|---|---|---|---|")
for r in rows:
    print(
        f"| {r[0]} | {r[1]} | {r[2]:.0f} | {r[3]:.3f} | {r[4]:.2f} | {r[5]:.2f} | {r[6]:.2e} | {r[7]:.2f} | {r[8]:.2f} |"
    )
