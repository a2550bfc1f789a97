"""scripts/build_ict_facekit.py on a tiny synthetic kit with the real kit's file structure."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from facecontrol.face.ict_model import load_ict_model

from media import ict_facekit_dir

REPO_ROOT = Path(__file__).resolve().parents[2]

NUM_VERTICES = 16  # 0-5 skin, 6-7 dropped, 8-11 eye socket left, 12-15 eye socket right
QUADS = [(0, 1, 4, 3), (1, 2, 5, 4), (5, 6, 7, 2), (8, 9, 10, 11), (12, 13, 14, 15)]
EXPRESSIONS = ["jawOpen", "mouthClose"]
NUM_IDENTITIES = 3
KEPT_VERTICES = [0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13, 14, 15]
LANDMARKS = [KEPT_VERTICES[(5 * i) % 14] for i in range(68)]
RIGHT_JAW = [0, 1, 2, 3, 4, 5, 8, 9]
LEFT_JAW = [10, 11, 12, 13, 14, 15, 0, 1]
EXT_RIGHT = [0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2]
EXT_LEFT = EXT_RIGHT[::-1]

README = """# ICT FaceKit (synthetic)

| Ordinal#| Geometry name        | Vertex indices | Polygon indices | #Vertices | #Faces |
|---------|----------------------|----------------|-----------------|-----------|--------|
| #3      | Eye socket left      | [8:11]         | [3:3]           | 4         | 1      |
| #4      | Eye socket right     | [12:15]        | [4:4]           | 4         | 1      |

| Ordinal#| Geometry name    | Vertex indices | Polygon indices | #Vertices | #Faces |
|---------|------------------|----------------|-----------------|-----------|--------|
| #0      | Full face area   | [0:7]          | [0:2]           | 8         | 3      |
| #1      | Narrow face area | [0:5]          | [0:1]           | 6         | 2      |

Right jawline (substitutes 0-7 in Multi PIE):

    {right}

Left jawline (substitutes 9-16 in Multi PIE):

    {left}

Right extended jawline (superset of right jawline):

    {ext_right}

Left extended jawline (superset of left jawline):

    {ext_left}
"""


def _write_obj(path: Path, vertices: np.ndarray) -> None:
    lines = ["# synthetic", "mtllib x.mtl", "usemtl M_Face"]
    lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in vertices]
    lines += [f"vt {u:.3f} 0.5" for u in np.linspace(0, 1, len(vertices))]
    lines += ["f " + " ".join(f"{v + 1}/{v + 1}" for v in quad) for quad in QUADS]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture()
def synthetic_kit(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    model_dir = tmp_path / "kit" / "FaceXModel"
    model_dir.mkdir(parents=True)
    meshes = {"generic_neutral_mesh": rng.normal(size=(NUM_VERTICES, 3)).round(5)}
    for name in [f"identity{i:03d}" for i in range(NUM_IDENTITIES)] + EXPRESSIONS + ["cheekRaiser_L"]:
        meshes[name] = (meshes["generic_neutral_mesh"] + rng.normal(size=(NUM_VERTICES, 3))).round(5)
    for name, vertices in meshes.items():
        _write_obj(model_dir / f"{name}.obj", vertices)
    index_info = {
        "expressions": EXPRESSIONS,
        "idx_to_landmark_verts": LANDMARKS,
        "idx_to_rigid_landmark_idx": [0, 36, 39, 42, 45, 16, 28, 31, 35],
    }
    (model_dir / "vertex_indices.json").write_text(json.dumps(index_info))
    lists = {
        k: ", ".join(map(str, v))
        for k, v in dict(right=RIGHT_JAW, left=LEFT_JAW, ext_right=EXT_RIGHT, ext_left=EXT_LEFT).items()
    }
    (tmp_path / "kit" / "README.md").write_text(README.format(**lists))
    return tmp_path / "kit", meshes


def _load_builder():
    spec = importlib.util.spec_from_file_location("build_ict_facekit", REPO_ROOT / "scripts" / "build_ict_facekit.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_build_from_synthetic_kit(synthetic_kit, tmp_path):
    kit_dir, meshes = synthetic_kit
    face_path, landmarks_path = _load_builder().build_from_kit(kit_dir, tmp_path / "out")
    face = dict(np.load(face_path, allow_pickle=False))
    kept = np.r_[0:6, 8:16]
    full_to_kept = np.full(NUM_VERTICES, -1)
    full_to_kept[kept] = np.arange(len(kept))
    neutral = meshes["generic_neutral_mesh"]

    np.testing.assert_array_equal(face["kept_full_index"], kept)
    np.testing.assert_array_equal(face["region"], [0] * 6 + [1] * 4 + [2] * 4)
    np.testing.assert_allclose(face["mean"], neutral[kept].astype(np.float32))
    for i in range(NUM_IDENTITIES):
        np.testing.assert_allclose(face["id_basis"][i], (meshes[f"identity{i:03d}"] - neutral)[kept], atol=1e-6)
    assert face["exp_basis"].shape == (2, 14, 3)  # cheekRaiser_L is not in the expression list
    np.testing.assert_allclose(face["exp_basis"][1], (meshes["mouthClose"] - neutral)[kept], atol=1e-6)
    assert list(face["exp_names"]) == EXPRESSIONS
    expected_triangles = [[0, 1, 4], [0, 4, 3], [1, 2, 5], [1, 5, 4], [6, 7, 8], [6, 8, 9], [10, 11, 12], [10, 12, 13]]
    np.testing.assert_array_equal(face["triangles"], expected_triangles)
    np.testing.assert_array_equal(face["triangles_skin"], expected_triangles[:4])
    np.testing.assert_array_equal(face["lmk68"], full_to_kept[LANDMARKS])
    np.testing.assert_array_equal(face["lmk68_full"], LANDMARKS)
    alt = full_to_kept[LANDMARKS]
    alt[0:8], alt[9:17] = full_to_kept[RIGHT_JAW], full_to_kept[LEFT_JAW]
    np.testing.assert_array_equal(face["lmk68_alt_jaw"], alt)
    np.testing.assert_array_equal(face["jawline_ext_left"], full_to_kept[EXT_LEFT])
    assert face["triangles"].dtype == np.int32 and face["mean"].dtype == np.float32
    assert face["region"].dtype == np.int8 and face["exp_names"].dtype == np.dtype("<U16")

    landmarks = dict(np.load(landmarks_path, allow_pickle=False))
    np.testing.assert_array_equal(landmarks["mean"], face["mean"][face["lmk68"]])
    np.testing.assert_array_equal(landmarks["id_basis"], face["id_basis"][:, face["lmk68"]])
    np.testing.assert_array_equal(landmarks["exp_basis"], face["exp_basis"][:, face["lmk68"]])
    assert set(landmarks) == {"mean", "id_basis", "exp_basis", "exp_names", "lmk68_full", "lmk68_rigid_subset", "units"}


def test_built_model_loads_and_combines(synthetic_kit, tmp_path):
    kit_dir, meshes = synthetic_kit
    face_path, landmarks_path = _load_builder().build_from_kit(kit_dir, tmp_path / "out")
    model = load_ict_model(face_path)
    identity = torch.tensor([[0.5, -1.0, 2.0]])
    expression = torch.tensor([[0.25, 0.0]])
    neutral = meshes["generic_neutral_mesh"]
    expected = neutral + sum(float(identity[0, i]) * (meshes[f"identity{i:03d}"] - neutral) for i in range(3))
    expected = expected + 0.25 * (meshes["jawOpen"] - neutral)
    kept = np.r_[0:6, 8:16]
    np.testing.assert_allclose(model.shape(identity, expression)[0].numpy(), expected[kept], atol=1e-5)
    lmk_model = load_ict_model(landmarks_path)
    np.testing.assert_allclose(
        lmk_model.landmarks3d(identity, expression).numpy(), model.landmarks3d(identity, expression).numpy(), atol=1e-6
    )


def test_shipped_export_layout():
    face = np.load(ict_facekit_dir() / "face_model.npz", allow_pickle=False)
    assert face["mean"].shape == (7474, 3) and face["id_basis"].shape == (100, 7474, 3)
    assert face["exp_basis"].shape == (53, 7474, 3) and face["triangles"].shape == (14736, 3)
    np.testing.assert_array_equal(face["kept_full_index"][face["lmk68"]], face["lmk68_full"])
    np.testing.assert_array_equal(face["kept_full_index"], np.r_[0:6706, 13294:14062])
