"""Shared test set-up.

The helpers in tests/ (golden_fixtures, media, face_test_utils) are importable by name; the pack itself is
imported as the installed package `facecontrol` (the checkout root is never put on sys.path, because its
`nodes`/`models` folders would shadow ComfyUI's modules of the same names).

Tiers: tests/unit run without ComfyUI (tests/unit/conftest.py refuses a ComfyUI folder on sys.path); tests/golden
compare with the authors' recorded outputs; tests/comfy call node classes with ComfyUI imported in this process
(the `comfy_in_process` fixture); tests/integration and tests/browser use a real server.

The `comfy` fixture is a real ComfyUI server on 127.0.0.1 with the pack installed, shared by the
integration and browser tests.

Model folders come from an extra_model_paths.yaml written here, so the pack's folder registration is
exercised the way users configure it. Real media are copied into the server's input folder.

Test weights: every module in tests/filled_weights/ has `install(model_root: Path) -> None`, which writes
small deterministically filled checkpoints in the released layouts into the model folders before the
server starts, so the shipped workflows run in CI with the real loaders.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
TESTS_DIR = Path(__file__).resolve().parent
for extra in (TESTS_DIR, REPO_ROOT / "scripts"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from comfy_client import ComfyServer, comfyui_dir  # noqa: E402
from media import media_path  # noqa: E402

MODEL_KEYS = ("face_adapter", "dva", "stylegan2", "rignet", "face_3dmm", "insightface", "mediapipe", "metrics")
# ComfyUI's own folders the workflows' stock loaders read (SD1.5 checkpoint, VAE).
COMFY_KEYS = ("checkpoints", "vae", "controlnet", "clip_vision")


@pytest.fixture(scope="module")
def comfy_in_process():
    """ComfyUI importable in this process for one test module: its folder on sys.path (removed afterwards, so no
    later unit test can lean on it) and CPU mode when there is no GPU (read when model_management is imported)."""
    import torch

    path = str(comfyui_dir())
    sys.path.insert(0, path)
    from comfy.cli_args import args

    args.cpu = args.cpu or not torch.cuda.is_available()
    yield
    sys.path.remove(path)


@pytest.fixture(scope="session")
def model_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("models")
    for key in MODEL_KEYS + COMFY_KEYS:
        (root / key).mkdir()
    for path in sorted((TESTS_DIR / "filled_weights").glob("*.py")):
        spec = importlib.util.spec_from_file_location(f"filled_weights_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.install(root)
    return root


@pytest.fixture(scope="session")
def comfy(tmp_path_factory, model_root) -> ComfyServer:
    work = tmp_path_factory.mktemp("comfy")
    yaml_path = work / "extra_model_paths.yaml"
    lines = ["facecontrol_tests:", f"    base_path: {model_root}"] + [f"    {k}: {k}/" for k in MODEL_KEYS + COMFY_KEYS]
    yaml_path.write_text("\n".join(lines) + "\n")
    server = ComfyServer(work, extra_model_paths=yaml_path)
    for name in ("astronaut.png", "t1.jpg", "carphone_pristine.mp4"):
        server.add_input(media_path(name))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def detector():
    """The mediapipe face detector, shared by the tests on real faces."""
    from facecontrol.face.detect_mediapipe import MediaPipeFaceDetector

    from face_test_utils import mediapipe_model_path

    det = MediaPipeFaceDetector(mediapipe_model_path())
    yield det
    det.close()
