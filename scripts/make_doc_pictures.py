"""Make the README's pictures with the shipped workflows on the real test media (docs/images/*.jpg).

    python scripts/make_doc_pictures.py                # starts a headless ComfyUI with the pack
    python scripts/make_doc_pictures.py --url http://127.0.0.1:8188

Only workflows whose outputs need no restricted weights run here (the open path: mediapipe and ICT-FaceKit),
so every picture is what a user gets: face_photo_pipeline, face_adapter_spatial_condition and the first
frames of face_video_pipeline (none shows the people of the group photo t1.jpg). Each picture is a strip of the
workflow's saved images, small JPEGs.
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
import tempfile
from pathlib import Path

from PIL import Image

from comfy_client import ComfyClient, ComfyServer, load_workflow

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "images"
HEIGHT = 224
MEDIA = ("astronaut.png", "t1.jpg", "carphone_pristine.mp4")

# picture name -> (workflow, [SaveImage node ids in strip order], how many images of each)
PICTURES = {
    "photo_pipeline": ("face_photo_pipeline", ["7", "8", "5"], 1),
    "spatial_condition": ("face_adapter_spatial_condition", ["14", "16", "13"], 1),
    "video_crops": ("face_video_pipeline", ["11"], 4),
}


def media_files() -> list[Path]:
    sys.path.insert(0, str(REPO / "tests"))
    from media import media_path

    return [media_path(name) for name in MEDIA]


def strip(images: list[Image.Image]) -> Image.Image:
    scaled = [
        im.convert("RGB").resize((max(1, round(im.width * HEIGHT / im.height)), HEIGHT), Image.LANCZOS) for im in images
    ]
    out = Image.new("RGB", (sum(im.width for im in scaled) + 4 * (len(scaled) - 1), HEIGHT), "white")
    x = 0
    for im in scaled:
        out.paste(im, (x, 0))
        x += im.width + 4
    return out


def make(client: ComfyClient) -> list[Path]:
    for path in media_files():
        client.upload(path, path.name)
    OUT.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (workflow, nodes, count) in PICTURES.items():
        entry = client.run(load_workflow(workflow))
        files = client.output_files(entry)
        images = [Image.open(io.BytesIO(client.view(item))) for node in nodes for item in files[node][:count]]
        path = OUT / f"{name}.jpg"
        strip(images).save(path, quality=85, optimize=True)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running ComfyUI with the pack (default: start one)")
    args = parser.parse_args(argv)
    if args.url:
        written = make(ComfyClient(args.url))
    else:
        work = Path(tempfile.mkdtemp())
        try:
            with ComfyServer(work) as server:
                written = make(server)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    for path in written:
        print(f"wrote {path} ({path.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
