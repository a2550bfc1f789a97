"""Build the compact ICT-FaceKit export (face_model.npz, landmarks_model.npz) from the kit's repository.

Input: a checkout or unpacked archive of github.com/ICT-VGL/ICT-FaceKit (MIT), which holds
``FaceXModel/*.obj``, ``FaceXModel/vertex_indices.json`` and ``README.md`` (region index tables and
jaw-line vertex lists). Every OBJ shares one topology; identity and expression arrays are the
offsets from ``generic_neutral_mesh.obj``, computed in float64 and stored as float32.

Usage: python scripts/build_ict_facekit.py KIT_DIR OUT_DIR
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from pathlib import Path

import numpy as np

logger = logging.getLogger("build_ict_facekit")

IDENTITY_PATTERN = re.compile(r"identity(\d{3})\.obj")  # the kit ships identity000..identity099
# README region rows that are kept, in output order, with their `region` value names.
KEPT_REGIONS = (
    ("Narrow face area", "face_skin"),
    ("Eye socket left", "eye_socket_left"),
    ("Eye socket right", "eye_socket_right"),
)
JAWLINE_HEADINGS = {
    "right": "Right jawline",
    "left": "Left jawline",
    "ext_right": "Right extended jawline",
    "ext_left": "Left extended jawline",
}
RIGHT_JAW_SLOTS = list(range(0, 8))  # iBUG jaw points the kit's right jaw-line list substitutes
LEFT_JAW_SLOTS = list(range(9, 17))
UNITS = (
    "centimetres; right-handed axes: +y up, +z forward (out of the face, towards a frontal viewer), "
    "+x towards the subject's LEFT (viewer's right in a frontal view); origin as in the ICT mesh "
    "(x=0 is the mid-sagittal plane, the nose tip is at about (0, 0.4, 13.1))"
)


def read_obj_vertices(path: Path) -> np.ndarray:
    """(N,3) float64 vertex positions of an OBJ file, in file order."""
    rows = [line[2:] for line in path.read_text().splitlines() if line.startswith("v ")]
    return np.array([row.split()[:3] for row in rows], dtype=np.float64)


def read_obj_polygons(path: Path) -> list[list[int]]:
    """Polygons of an OBJ file as 0-based vertex index lists, in file order."""
    polygons = []
    for line in path.read_text().splitlines():
        if line.startswith("f "):
            polygons.append([int(token.split("/")[0]) - 1 for token in line.split()[1:]])
    return polygons


def parse_region_ranges(readme: str, name: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """Inclusive (vertex, polygon) index ranges of a README table row such as 'Narrow face area'."""
    pattern = rf"\|\s*{re.escape(name)}\s*\|\s*\[(\d+):(\d+)\]\s*\|\s*\[(\d+):(\d+)\]"
    match = re.search(pattern, readme)
    if match is None:
        raise ValueError(f"README has no table row for {name!r}")
    v0, v1, p0, p1 = (int(x) for x in match.groups())
    return (v0, v1), (p0, p1)


def parse_index_list(readme: str, heading: str) -> np.ndarray:
    """The comma-separated index line that follows a README heading line starting with ``heading``."""
    lines = readme.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith(heading + " (") or line.strip().rstrip(":") == heading:
            for follow in lines[i + 1 :]:
                if follow.strip():
                    return np.array([int(x) for x in follow.split(",")], dtype=np.int64)
    raise ValueError(f"README has no index list under {heading!r}")


def kept_indices(readme: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full-mesh vertex indices, polygon indices and region value of each kept vertex."""
    vertices, polygons, regions = [], [], []
    for value, (row, _) in enumerate(KEPT_REGIONS):
        (v0, v1), (p0, p1) = parse_region_ranges(readme, row)
        vertices.append(np.arange(v0, v1 + 1))
        polygons.append(np.arange(p0, p1 + 1))
        regions.append(np.full(v1 - v0 + 1, value, dtype=np.int8))
    return np.concatenate(vertices), np.concatenate(polygons), np.concatenate(regions)


def triangulate(polygons: list[list[int]], full_to_kept: np.ndarray) -> np.ndarray:
    """Split each kept polygon (a,b,c,d) into (a,b,c), (a,c,d), keeping the OBJ winding."""
    triangles = []
    for polygon in polygons:
        local = [int(full_to_kept[v]) for v in polygon]
        if min(local) < 0:
            raise ValueError(f"polygon {polygon} uses a vertex outside the kept regions")
        triangles.extend([local[0], local[k], local[k + 1]] for k in range(1, len(local) - 1))
    return np.array(triangles, dtype=np.int32)


def offsets(model_dir: Path, names: list[str], neutral: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """(K,V,3) float32 offsets of each named OBJ from the neutral mesh at the kept vertices."""
    result = np.empty((len(names), len(kept), 3), dtype=np.float32)
    for k, name in enumerate(names):
        vertices = read_obj_vertices(model_dir / f"{name}.obj")
        if vertices.shape != neutral.shape:
            raise ValueError(f"{name}.obj has {len(vertices)} vertices, the neutral mesh {len(neutral)}")
        result[k] = (vertices - neutral)[kept]
    return result


def build_arrays(kit_dir: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The arrays of face_model.npz and landmarks_model.npz."""
    model_dir = kit_dir / "FaceXModel"
    readme = (kit_dir / "README.md").read_text(encoding="utf-8")
    index_info = json.loads((model_dir / "vertex_indices.json").read_text())
    neutral_path = model_dir / "generic_neutral_mesh.obj"
    neutral = read_obj_vertices(neutral_path)
    kept, kept_polygons, region = kept_indices(readme)
    full_to_kept = np.full(len(neutral), -1, dtype=np.int64)
    full_to_kept[kept] = np.arange(len(kept))
    polygons = read_obj_polygons(neutral_path)
    skin_polygons = parse_region_ranges(readme, KEPT_REGIONS[0][0])[1]
    triangles = triangulate([polygons[p] for p in kept_polygons], full_to_kept)
    triangles_skin = triangulate([polygons[p] for p in range(skin_polygons[0], skin_polygons[1] + 1)], full_to_kept)
    exp_names = list(index_info["expressions"])
    identity_names = identity_mesh_names(model_dir)
    logger.info("reading %d identity and %d expression meshes", len(identity_names), len(exp_names))
    lmk68_full = np.asarray(index_info["idx_to_landmark_verts"], dtype=np.int64)
    lmk68 = _to_kept(full_to_kept, lmk68_full, "landmark")
    jaw = {key: _to_kept(full_to_kept, parse_index_list(readme, h), h) for key, h in JAWLINE_HEADINGS.items()}
    lmk68_alt_jaw = lmk68.copy()
    lmk68_alt_jaw[RIGHT_JAW_SLOTS] = jaw["right"]
    lmk68_alt_jaw[LEFT_JAW_SLOTS] = jaw["left"]
    face = {
        "mean": neutral[kept].astype(np.float32),
        "id_basis": offsets(model_dir, identity_names, neutral, kept),
        "exp_basis": offsets(model_dir, exp_names, neutral, kept),
        "exp_names": np.array(exp_names, dtype="<U16"),
        "triangles": triangles,
        "triangles_skin": triangles_skin,
        "region": region,
        "region_names": np.array([name for _, name in KEPT_REGIONS], dtype="<U16"),
        "lmk68": lmk68.astype(np.int32),
        "lmk68_full": lmk68_full.astype(np.int32),
        "lmk68_alt_jaw": lmk68_alt_jaw.astype(np.int32),
        "jawline_ext_right": jaw["ext_right"].astype(np.int32),
        "jawline_ext_left": jaw["ext_left"].astype(np.int32),
        "lmk68_rigid_subset": np.asarray(index_info["idx_to_rigid_landmark_idx"], dtype=np.int32),
        "kept_full_index": kept.astype(np.int32),
        "units": np.array(UNITS),
    }
    landmarks = {
        "mean": face["mean"][lmk68],
        "id_basis": face["id_basis"][:, lmk68],
        "exp_basis": face["exp_basis"][:, lmk68],
        "exp_names": face["exp_names"],
        "lmk68_full": face["lmk68_full"],
        "lmk68_rigid_subset": face["lmk68_rigid_subset"],
        "units": face["units"],
    }
    return face, landmarks


def identity_mesh_names(model_dir: Path) -> list[str]:
    """identity000, identity001, ... as present (100 in the kit), checked to be consecutive."""
    numbers = sorted(int(m.group(1)) for p in model_dir.iterdir() if (m := IDENTITY_PATTERN.fullmatch(p.name)))
    if not numbers or numbers != list(range(len(numbers))):
        raise ValueError(f"{model_dir} needs identity000.obj ... identityNNN.obj without gaps, found {numbers[:5]}...")
    return [f"identity{i:03d}" for i in numbers]


def _to_kept(full_to_kept: np.ndarray, full_indices: np.ndarray, what: str) -> np.ndarray:
    local = full_to_kept[full_indices]
    if (local < 0).any():
        raise ValueError(f"{what} vertices {full_indices[local < 0].tolist()} are outside the kept regions")
    return local


def build_from_kit(kit_dir: str | Path, out_dir: str | Path) -> tuple[Path, Path]:
    """Write face_model.npz (compressed) and landmarks_model.npz into ``out_dir``; return their paths."""
    face, landmarks = build_arrays(Path(kit_dir))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    face_path, landmarks_path = out_dir / "face_model.npz", out_dir / "landmarks_model.npz"
    np.savez_compressed(face_path, **face)
    np.savez_compressed(landmarks_path, **landmarks)
    logger.info(
        "wrote %s (%d vertices, %d triangles) and %s",
        face_path,
        len(face["mean"]),
        len(face["triangles"]),
        landmarks_path,
    )
    return face_path, landmarks_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kit_dir", type=Path, help="ICT-FaceKit checkout (holds FaceXModel/ and README.md)")
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    build_from_kit(args.kit_dir, args.out_dir)


if __name__ == "__main__":
    main()
