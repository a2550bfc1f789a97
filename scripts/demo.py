"""The main job: start ComfyUI headless with the pack, queue the shipped workflows on real photos and video
over ComfyUI's HTTP API, and copy every output to output/demo/<workflow>/.

    .venv/bin/python scripts/demo.py [--out output/demo] [--only face_photo_pipeline ...]
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

from comfy_client import REPO_ROOT, ComfyServer, WorkflowError, load_workflow

log = logging.getLogger("facecontrol.demo")
MEDIA = ("astronaut.png", "t1.jpg", "carphone_pristine.mp4")
DEMO_WORKFLOWS = ("face_photo_pipeline", "face_group_select", "face_video_pipeline", "face_adapter_spatial_condition")
FA_WORKFLOWS = ("face_adapter_reenactment", "face_adapter_swap")  # need the real Face-Adapter weights


def copy_media(server: ComfyServer) -> None:
    media_dir = REPO_ROOT / "data" / "media"
    for name in MEDIA:
        if not (media_dir / name).is_file():
            sys.exit(f"{media_dir / name} is missing: run scripts/setup.sh first (it copies the test media)")
        server.add_input(media_dir / name)


def run_workflow(server: ComfyServer, name: str, out_dir: Path) -> list[Path]:
    start = time.time()
    entry = server.run(load_workflow(name))
    saved = []
    target = out_dir / name
    target.mkdir(parents=True, exist_ok=True)
    for items in server.output_files(entry).values():
        for item in items:
            path = target / item["filename"]
            path.write_bytes(server.view(item))
            saved.append(path)
    log.info("%s: %d files in %.1f s", name, len(saved), time.time() - start)
    return saved


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "output" / "demo")
    parser.add_argument("--only", nargs="*", default=None, help="workflow names (default: all demo workflows)")
    args = parser.parse_args()
    names = args.only or list(DEMO_WORKFLOWS)
    if args.only is None:  # Face-Adapter reenactment and swap need the real weights (name and sha256 checked)
        from facecontrol import model_files, model_names

        fa_missing = model_files.missing_real_files(
            model_names.FACE_ADAPTER_DEMO_FILES, REPO_ROOT / "comfyui" / "models"
        )
        if fa_missing:
            log.warning(
                "Face-Adapter reenactment and swap skipped; fetch these files (scripts/fetch_models.py "
                "--models-dir comfyui/models --paper face_adapter):\n  %s",
                "\n  ".join(fa_missing),
            )
        else:
            names += list(FA_WORKFLOWS)
            paper_missing = model_files.missing_real_files(
                model_names.FACE_ADAPTER_PAPER_PATH_FILES, REPO_ROOT / "comfyui" / "models"
            )
            if paper_missing:
                log.info(
                    "Face-Adapter runs the open path where these authors' files are missing (auto backends: "
                    "mediapipe, ICT-FaceKit, geometric mask, the SD1.5 UNet):\n  %s",
                    "\n  ".join(paper_missing),
                )
            else:
                log.info("Face-Adapter runs the authors' path: SCRFD, d3dfr + BFM, seg UNet / BiSeNet, release UNet")
        log.info(
            "DVA and PIE workflows need their papers' weights (scripts/fetch_models.py --paper dva | pie); "
            "then: scripts/demo.py --only dva_video_edit dva_video_edit_clip pie_portrait_edit"
        )
    if args.out.exists():
        shutil.rmtree(args.out)
    failures = {}
    with tempfile.TemporaryDirectory(prefix="facecontrol-demo-") as tmp:
        with ComfyServer(Path(tmp)) as server:
            log.info("ComfyUI with FaceControl is up at %s", server.url)
            copy_media(server)
            for name in names:
                try:
                    run_workflow(server, name, args.out)
                except WorkflowError as err:
                    failures[name] = str(err)
                    log.error("%s failed: %s", name, err)
    summary = {"outputs": str(args.out), "failed": failures}
    (args.out).mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    log.info("outputs are in %s", args.out)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
