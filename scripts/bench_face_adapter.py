"""Face-Adapter per-image time: everything outside the sampler against the sampler's own time.

Runs the shipped API workflow (face_adapter_reenactment or face_adapter_swap) in this process, node by node in
graph order, timing each node; the first pass loads the models, the timed passes are the ones after it.
Weights: ComfyUI's models folder when the real files are there (checked by name and sha256 from the manifest),
else filled weights in the released layouts: `--size test` (the CI weights, small UNet/ControlNet/vision tower)
or `--size full` (SD1.5's and ViT-H/14's real sizes, filled, so the times are those of the real networks).

    .venv/bin/python scripts/bench_face_adapter.py --workflow face_adapter_reenactment --size full --steps 25
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "scripts")]

from comfy_client import comfyui_dir  # noqa: E402

GROUPS = {
    "FaceControlDetectFaces": "detect",
    "FaceControlAlignFaces": "align",
    "FaceControlFit3DMM": "3DMM",
    "FaceControlRecombine3DMM": "3DMM",
    "FaceControlProjectLandmarks": "landmarks",
    "FaceControlAdaptingMask": "mask",
    "FaceControlSpatialControl": "mask",
    "FaceControlFaceAdapterIdentity": "tokens",
    "FaceControlFaceAdapterAttributes": "tokens",
    "FaceControlFaceAdapterApplyControlNet": "tokens",
    "CLIPTextEncode": "tokens",
    "FaceControlFaceAdapterBlend": "blend",
    "FaceControlPasteBack": "paste-back",
    "KSampler": "sampler",
    "VAEDecode": "VAE decode",
}
SKIP = {"SaveImage", "PreviewAny"}


def comfy_setup(models_dir: Path, cpu: bool) -> None:
    sys.path.insert(0, str(comfyui_dir()))
    import comfy.cli_args

    comfy.cli_args.args.cpu = cpu
    import folder_paths

    from facecontrol.nodes.common import register_model_folders

    register_model_folders()
    for key in ("checkpoints", "vae", "face_adapter", "face_3dmm", "mediapipe"):
        paths, exts = folder_paths.folder_names_and_paths.get(key, ([], set()))
        folder_paths.folder_names_and_paths[key] = ([str(models_dir / key)] + list(paths), exts)


def real_weights_present(models_dir: Path) -> bool:
    from facecontrol import model_files

    entry = model_files.get_entry("checkpoints/v1-5-pruned-emaonly.safetensors")
    path = models_dir / "checkpoints" / entry.path
    return path.is_file() and model_files.verify_sha256(path, entry.sha256)


def node_classes() -> dict:
    import nodes as comfy_nodes
    from facecontrol.nodes import load_node_classes

    classes = dict(comfy_nodes.NODE_CLASS_MAPPINGS)
    classes.update({cls.define_schema().node_id: cls for cls in load_node_classes()})
    return classes


def run_node(cls, inputs: dict):
    if hasattr(cls, "define_schema"):
        return tuple(cls.execute(**inputs).args)
    return getattr(cls(), cls.FUNCTION)(**inputs)


def run_graph(api: dict, classes: dict, images: dict) -> dict[str, float]:
    outputs, times = {}, defaultdict(float)
    pending = [k for k in api if api[k]["class_type"] not in SKIP]
    while pending:
        for nid in list(pending):
            node = api[nid]
            links = [v for v in node["inputs"].values() if isinstance(v, list)]
            if any(link[0] not in outputs for link in links):
                continue
            inputs = {k: (outputs[v[0]][v[1]] if isinstance(v, list) else v) for k, v in node["inputs"].items()}
            start = time.perf_counter()
            if node["class_type"] == "LoadImage":
                outputs[nid] = (images[node["inputs"]["image"]], None)
            else:
                with torch.inference_mode():
                    outputs[nid] = run_node(classes[node["class_type"]], inputs)
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            times[GROUPS.get(node["class_type"], "other")] += time.perf_counter() - start
            pending.remove(nid)
    return dict(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workflow", default="face_adapter_reenactment")
    parser.add_argument("--size", choices=["test", "full"], default="full")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--models-dir", type=Path, default=REPO / "comfyui" / "models")
    parser.add_argument("--cpu", action="store_true", help="force CPU even when a GPU is present")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    cpu = args.cpu or not torch.cuda.is_available()
    models_dir = args.models_dir
    comfy_setup(models_dir, cpu)
    source = "real weights"
    if not real_weights_present(models_dir):
        from filled_weights import face_adapter as weights
        from filled_weights import spatial

        models_dir = Path(tempfile.mkdtemp(prefix="fa_bench_"))
        cache = weights.cache_dir().with_name(f"face_adapter_{weights.VERSION}_{args.size}")
        if not (cache / "checkpoints" / weights.CKPT_NAME).is_file():
            weights.build_cache(cache, full=args.size == "full")
        for src in (p for p in cache.rglob("*") if p.is_file()):
            dst = models_dir / src.relative_to(cache)
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.symlink_to(src)
        spatial.install(models_dir)
        comfy_setup(models_dir, cpu)
        source = f"filled weights, {args.size} size"

    from media import load_rgb

    api = json.loads((REPO / "workflows" / "api" / f"{args.workflow}.json").read_text())
    api["28"]["inputs"]["steps"] = args.steps
    images = {name: torch.from_numpy(load_rgb(name)).float()[None] / 255.0 for name in ("astronaut.png", "t1.jpg")}
    classes = node_classes()
    run_graph(api, classes, images)  # loads every model
    runs = [run_graph(api, classes, images) for _ in range(args.repeats)]
    mean = {k: sum(r[k] for r in runs) / len(runs) for k in runs[0]}
    device = "CPU" if cpu else torch.cuda.get_device_name(0)
    outside = sum(v for k, v in mean.items() if k not in ("sampler", "VAE decode"))
    print(
        f"{args.workflow} on {device} ({torch.get_num_threads()} threads), {source}, {args.steps} steps, "
        f"mean of {args.repeats} warm runs"
    )
    for key in ("detect", "align", "3DMM", "landmarks", "mask", "tokens", "blend", "paste-back", "other"):
        if key in mean:
            print(f"  {key:12s} {mean[key] * 1000:9.1f} ms")
    print(f"  {'outside':12s} {outside * 1000:9.1f} ms  (everything but sampler and VAE decode)")
    print(f"  {'sampler':12s} {mean['sampler'] * 1000:9.1f} ms  ({mean['sampler'] / args.steps * 1000:.1f} ms/step)")
    print(f"  {'VAE decode':12s} {mean['VAE decode'] * 1000:9.1f} ms")


if __name__ == "__main__":
    main()
