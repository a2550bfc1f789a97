"""Where the pack's model files live: folder keys, the model manifest and one resolver for all of them.

Nothing here imports ComfyUI. The node layer registers `MODEL_FOLDERS` with `folder_paths` and passes the
registered search folders to `resolve`; scripts and tests pass plain directories.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

logger = logging.getLogger(__name__)

PACK_DIR = Path(__file__).resolve().parent
MANIFEST_PATH = PACK_DIR / "model_manifest.json"
FETCH_SCRIPT = PACK_DIR / "scripts" / "fetch_models.py"

# Folder key -> default subfolder under ComfyUI's models dir and the file extensions listed there.
MODEL_FOLDERS: dict[str, dict[str, Any]] = {
    "face_adapter": {
        "subfolder": "face_adapter",
        "extensions": [".pth", ".safetensors", ".bin", ".json", ".mat", ".onnx"],
        "description": "Face-Adapter release (HF FaceAdapter/FaceAdapter layout, third_party/ included)",
    },
    "dva": {
        "subfolder": "dva",
        "extensions": [".ckpt", ".pkl", ".pth", ".tar", ".pt", ".dat", ".safetensors"],
        "description": "Diffusion Video Autoencoders checkpoints and pretrained_models/",
    },
    "stylegan2": {
        "subfolder": "stylegan2",
        "extensions": [".pkl", ".pt", ".pth", ".safetensors"],
        "description": "StyleGAN2 FFHQ generators (NVlabs .pkl or rosinality .pt)",
    },
    "rignet": {
        "subfolder": "rignet",
        "extensions": [".pt", ".pth", ".safetensors"],
        "description": "RigNet weights trained for PIE",
    },
    "face_3dmm": {
        "subfolder": "face_3dmm",
        "extensions": [".pth", ".mat", ".npz", ".bin", ".safetensors"],
        "description": "3DMM regressors and face models (Deep3DFaceRecon, BFM, ICT-FaceKit)",
    },
    "insightface": {
        "subfolder": "insightface",
        "extensions": [".onnx", ".pth"],
        "description": "insightface ONNX models (models/antelopev2/) and ArcFace backbones",
    },
    "mediapipe": {
        "subfolder": "mediapipe",
        "extensions": [".task", ".tflite"],
        "description": "MediaPipe task files (face_landmarker.task)",
    },
    "metrics": {
        "subfolder": "facecontrol_metrics",
        "extensions": [".pth", ".dat", ".pt", ".safetensors"],
        "description": "networks that only score results: LPIPS (lpips package layout), pytorch-fid's Inception, dlib",
    },
}

# ComfyUI's own folders that some manifest entries point to (loaded by ComfyUI's loaders, not by the pack).
COMFY_FOLDERS: dict[str, str] = {"checkpoints": "checkpoints", "vae": "vae"}

PAPERS = ("face_adapter", "dva", "pie", "faces")


class ModelFileNotFound(FileNotFoundError):
    """A model file is in none of the searched places; the message says where it comes from."""

    def __init__(self, entry: "ModelEntry", searched: Sequence[Path]):
        self.entry = entry
        self.searched = list(searched)
        super().__init__(missing_file_message(entry, self.searched))


@dataclass(frozen=True)
class Location:
    """A relative path inside one folder key."""

    folder: str
    path: str


@dataclass(frozen=True)
class PackageCopy:
    """A copy of the file shipped inside an installed Python package (found by spec, never imported)."""

    package: str
    path: str


@dataclass(frozen=True)
class ModelEntry:
    """One model file of the manifest."""

    name: str
    folder: str
    path: str
    source: Mapping[str, Any]
    license: str
    non_commercial: bool | None
    papers: tuple[str, ...]
    used_by: str
    sha256: str | None = None
    content_sha256: str | None = None
    size: int | None = None
    size_approx: str | None = None
    alternatives: tuple[Location, ...] = ()
    package_copies: tuple[PackageCopy, ...] = ()
    pointer: bool = False
    required: bool = True
    notes: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def filename(self) -> str:
        return Path(self.path).name

    def locations(self) -> list[Location]:
        """The primary location first, then the alternatives."""
        return [Location(self.folder, self.path), *self.alternatives]

    def source_text(self) -> str:
        return describe_source(self.source)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelEntry":
        known = {
            "name",
            "folder",
            "path",
            "source",
            "license",
            "non_commercial",
            "papers",
            "used_by",
            "sha256",
            "content_sha256",
            "size",
            "size_approx",
            "alternatives",
            "package_copies",
            "pointer",
            "required",
            "notes",
        }
        name = data.get("name") or f"{data['folder']}/{data['path']}"
        return cls(
            name=name,
            folder=data["folder"],
            path=data["path"],
            source=dict(data.get("source") or {}),
            license=data.get("license", "unknown"),
            non_commercial=data.get("non_commercial"),
            papers=tuple(data.get("papers", ())),
            used_by=data.get("used_by", ""),
            sha256=(data.get("sha256") or None),
            content_sha256=(data.get("content_sha256") or None),
            size=data.get("size"),
            size_approx=data.get("size_approx"),
            alternatives=tuple(Location(a["folder"], a["path"]) for a in data.get("alternatives", ())),
            package_copies=tuple(PackageCopy(p["package"], p["path"]) for p in data.get("package_copies", ())),
            pointer=bool(data.get("pointer", False)),
            required=bool(data.get("required", True)),
            notes=data.get("notes", ""),
            extra={k: v for k, v in data.items() if k not in known},
        )


def describe_source(source: Mapping[str, Any]) -> str:
    """One line saying where a file comes from."""
    if "hf_repo" in source:
        return f"Hugging Face {source['hf_repo']}, file {source['path']}"
    if "gdrive_id" in source:
        text = f"Google Drive https://drive.google.com/file/d/{source['gdrive_id']}/view"
        if source.get("archive"):
            text += f" ({source.get('archive_name', 'archive')}, member {source['member']})"
        return text
    if "build" in source:
        return f"built from {source.get('repo', source['build'])} at {source.get('commit', '?')}"
    if "url" in source:
        return source["url"] if not source.get("archive") else f"{source['url']} (member {source['member']})"
    if "manual" in source:
        return source.get("page", "manual download")
    return "unknown source"


def load_manifest(path: Path | str | None = None) -> dict[str, ModelEntry]:
    """Read the manifest into {name: entry}; names are unique."""
    manifest_path = Path(path) if path is not None else MANIFEST_PATH
    data = json.loads(manifest_path.read_text(encoding="utf-8"))
    entries: dict[str, ModelEntry] = {}
    for raw in data["models"]:
        entry = ModelEntry.from_dict(raw)
        if entry.name in entries:
            raise ValueError(f"duplicate model name {entry.name!r} in {manifest_path}")
        entries[entry.name] = entry
    return entries


def get_entry(name: str, manifest: Mapping[str, ModelEntry] | None = None) -> ModelEntry:
    """Look up an entry by its name, or by its file name when that is unique."""
    entries = manifest if manifest is not None else load_manifest()
    if name in entries:
        return entries[name]
    matches = [e for e in entries.values() if e.filename == name or e.path == name]
    if len(matches) == 1:
        return matches[0]
    if matches:
        names = ", ".join(sorted(e.name for e in matches))
        raise KeyError(f"{name!r} is ambiguous in the model manifest; use one of: {names}")
    raise KeyError(f"{name!r} is not in the model manifest")


def folder_subdir(folder_key: str) -> str:
    """The default subfolder of a folder key under ComfyUI's models dir."""
    if folder_key in MODEL_FOLDERS:
        return MODEL_FOLDERS[folder_key]["subfolder"]
    return COMFY_FOLDERS.get(folder_key, folder_key)


def default_folders(models_dir: Path | str, keys: Sequence[str] | None = None) -> dict[str, list[Path]]:
    """Search folders under one models dir, laid out as ComfyUI does by default."""
    root = Path(models_dir)
    wanted = keys if keys is not None else [*MODEL_FOLDERS, *COMFY_FOLDERS]
    return {key: [root / folder_subdir(key)] for key in wanted}


def candidate_paths(entry: ModelEntry, folders: Mapping[str, Sequence[Path | str]]) -> list[Path]:
    """Every folder path where the file may be, in search order."""
    paths: list[Path] = []
    for location in entry.locations():
        for base in folders.get(location.folder, ()):
            candidate = Path(base) / location.path
            if candidate not in paths:
                paths.append(candidate)
    return paths


def _package_roots(package: str) -> list[Path] | None:
    """The folders of an installed package, or None when it is not installed (it is never imported)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    roots = [Path(root) for root in (spec.submodule_search_locations or [])]
    if not roots and spec.origin:
        roots = [Path(spec.origin).parent]
    return roots


def package_copy_paths(entry: ModelEntry) -> list[Path]:
    """Paths of package-shipped copies, for installed packages only."""
    paths: list[Path] = []
    for copy in entry.package_copies:
        paths.extend(root / copy.path for root in _package_roots(copy.package) or [])
    return paths


def resolve(
    name_or_entry: str | ModelEntry,
    folders: Mapping[str, Sequence[Path | str]],
    manifest: Mapping[str, ModelEntry] | None = None,
) -> Path:
    """Find a model file in the registered folders, then in package-shipped copies.

    Raises ModelFileNotFound naming every path searched, the file's source, licence and fetch command.
    """
    entry = name_or_entry if isinstance(name_or_entry, ModelEntry) else get_entry(name_or_entry, manifest)
    searched = candidate_paths(entry, folders) + package_copy_paths(entry)
    for path in searched:
        if path.is_file():
            logger.debug("resolved %s -> %s", entry.name, path)
            return path
    searched += _unavailable_packages(entry)
    raise ModelFileNotFound(entry, searched)


def _unavailable_packages(entry: ModelEntry) -> list[Path]:
    """Package copies whose package is not installed, listed in the error as a hint."""
    return [
        Path(f"<package {c.package} not installed>") / c.path
        for c in entry.package_copies
        if _package_roots(c.package) is None
    ]


def fetch_command(entry: ModelEntry) -> str:
    return f'python "{FETCH_SCRIPT}" --models-dir <ComfyUI>/models --only "{entry.name}"'


def missing_file_message(entry: ModelEntry, searched: Sequence[Path]) -> str:
    lines = [f"{entry.filename} not found (model {entry.name!r}, used by {entry.used_by or ', '.join(entry.papers)})."]
    lines.append("Looked in:" if searched else "Looked in: no folder is registered for it.")
    lines.extend(f"  {p}" for p in searched)
    lines.append(f"It comes from: {entry.source_text()}")
    lines.append(f"Licence: {entry.license}")
    if "manual" in entry.source:
        lines.append(f"Manual step: {entry.source['manual']}")
    else:
        lines.append(f"Fetch it with: {fetch_command(entry)}")
    first = next(iter(searched), None)
    if first is not None and not str(first).startswith("<"):
        lines.append(f"or put the file at {first}")
    return "\n".join(lines)


def file_sha256(path: Path | str, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: Path | str, expected: str | None) -> bool:
    """True when the file's sha256 equals `expected` (hex, any case); True when nothing is expected."""
    if not expected:
        return True
    return file_sha256(path) == expected.strip().lower()


def zip_content_sha256(path: Path | str) -> str:
    """sha256 over a zip's (.npz) member names and uncompressed bytes.

    Equal for equal arrays whatever the compressor."""
    digest = hashlib.sha256()
    with zipfile.ZipFile(path) as archive:
        for member in sorted(archive.namelist()):
            data = archive.read(member)
            digest.update(member.encode("utf-8") + b"\0" + str(len(data)).encode("ascii") + b"\0")
            digest.update(data)
    return digest.hexdigest()


def entries_for_paper(paper: str, manifest: Mapping[str, ModelEntry] | None = None) -> list[ModelEntry]:
    entries = manifest if manifest is not None else load_manifest()
    return [e for e in entries.values() if paper in e.papers]


def folder_keys(manifest: Mapping[str, ModelEntry] | None = None) -> list[str]:
    """Every folder key the manifest searches (pack folders and ComfyUI's own), for the node layer."""
    entries = manifest if manifest is not None else load_manifest()
    keys = {loc.folder for e in entries.values() for loc in e.locations()}
    return sorted(keys)


def missing_real_files(names: Sequence[str], models_dir) -> list[str]:
    """Manifest names among ``names`` that are absent from a ComfyUI models dir, or present with a sha256 other
    than the manifest's (as the filled test files, which share the names)."""
    folders = default_folders(models_dir)
    missing = []
    for name in names:
        entry = get_entry(name)
        try:
            path = resolve(entry, folders)
        except ModelFileNotFound:
            missing.append(entry.name)
            continue
        if not verify_sha256(path, entry.sha256):
            missing.append(f"{entry.name} (sha256 differs from the manifest's)")
    return missing
