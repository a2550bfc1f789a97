"""Hostile model files against the real loaders that would read them.

Each file tries to run code (write a marker file) or to exhaust the reader. For each: nothing runs, nothing is
written outside the model folder, and the refusal names the file. The probe of issue 15 found the TorchScript
hole (DVA's CLIP loaded with torch.jit.load) and the pickle bomb; the others are the same class of hole in the
other loaders. docs/RELIABILITY.md lists them.
"""

from __future__ import annotations

import collections
import io
import json
import os
import pickle
import sys
import tarfile
import time
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from facecontrol.models.checkpoint import ModelFileError

# --------------------------------------------------------------------------- payloads


class WritesMarker:
    """Unpickling this calls os.system: plain pickle.load would create the marker."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _persistence_module(monkeypatch):
    """torch_utils.persistence as NVlabs pickles reference it, so a test can pickle a persistent record."""

    def reconstruct(meta):
        return meta

    reconstruct.__module__, reconstruct.__qualname__ = "torch_utils.persistence", "_reconstruct_persistent_obj"
    package, module = types.ModuleType("torch_utils"), types.ModuleType("torch_utils.persistence")
    module._reconstruct_persistent_obj = reconstruct
    package.persistence = module
    monkeypatch.setitem(sys.modules, "torch_utils", package)
    monkeypatch.setitem(sys.modules, "torch_utils.persistence", module)
    return reconstruct


class Persistent:
    def __init__(self, reconstruct, meta):
        self.reconstruct, self.meta = reconstruct, meta

    def __reduce__(self):
        return self.reconstruct, (self.meta,)


def shared_nesting(levels: int, fan: int = 10):
    value = 0
    for _ in range(levels):
        value = [value] * fan
    return value


@pytest.fixture
def room(tmp_path):
    """A model folder inside a sandbox: the test checks nothing appears in the sandbox outside it."""
    models = tmp_path / "models"
    models.mkdir()
    marker = tmp_path / "MARKER"
    yield models, marker
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if not p.is_relative_to(models))
    assert written == [], f"written outside the model folder: {written}"
    assert not marker.exists()


def refused(call, path: Path, *words: str, error=ModelFileError):
    with pytest.raises(error) as caught:
        call(path)
    message = str(caught.value)
    assert str(path) in message, message
    for word in words:
        assert word in message, message
    assert "weights_only=False" not in message and "weights_only` set to `False" not in message, message
    return message


# --------------------------------------------------------------------------- pickles with __reduce__


def test_reduce_pickle_in_an_nvlabs_snapshot(room):
    from facecontrol.models.stylegan2_nvlabs import load_nvlabs_pkl

    models, marker = room
    path = models / "ffhq.pkl"
    path.write_bytes(pickle.dumps({"G_ema": WritesMarker(marker)}, protocol=4))
    refused(load_nvlabs_pkl, path, "posix.system")


@pytest.mark.parametrize("loader", ["token_mapper", "lightning", "rosinality", "bisenet"])
def test_reduce_pickle_in_a_torch_file(room, loader):
    from facecontrol.models.bisenet import load_bisenet
    from facecontrol.models.dva_checkpoint import load_lightning_checkpoint
    from facecontrol.models.stylegan2 import read_rosinality_checkpoint
    from facecontrol.models.token_mappers import load_token_mapper

    models, marker = room
    path = models / "weights.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": WritesMarker(marker)}, path)
    call = {
        "token_mapper": load_token_mapper,
        "lightning": load_lightning_checkpoint,
        "rosinality": read_rosinality_checkpoint,
        "bisenet": load_bisenet,
    }[loader]
    refused(call, path, "posix.system", "Nothing of it was run")


# --------------------------------------------------------------------------- TorchScript


class WritesOnLoad(torch.nn.Module):
    """TorchScript whose __setstate__, run by torch.jit.load, creates the marker."""

    def __init__(self, marker: str):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(2))
        self.path = marker

    def forward(self, x):
        return x * self.weight

    @torch.jit.export
    def __getstate__(self) -> tuple[torch.Tensor, str, bool]:
        return (self.weight, self.path, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[torch.Tensor, str, bool]) -> None:
        self.weight = state[0]
        self.path = state[1]
        self.training = state[2]
        written = torch.from_file(state[1], True, 8, dtype=torch.uint8)
        written.fill_(65)
        self.weight = self.weight + written[:2].float() * 0


def test_torchscript_that_writes_on_load(room):
    """The finding of the probe: DVA's text edit read dva/clip/ViT-B-16.pt with torch.jit.load."""
    from facecontrol.models.checkpoint import read_state
    from facecontrol.models.clip_archive import load_openai_clip as load_clip
    from facecontrol.models.safe_pickle import UnsafePickleError

    models, marker = room
    path = models / "ViT-B-16.pt"
    torch.jit.save(torch.jit.script(WritesOnLoad(str(marker))), str(path))
    refused(load_clip, path, "__setstate__", error=UnsafePickleError)
    refused(read_state, path, "TorchScript archive")  # every other torch-file loader


# --------------------------------------------------------------------------- bombs


def test_pickle_bomb_in_an_nvlabs_snapshot(room, monkeypatch):
    from facecontrol.models.safe_pickle import UnsafePickleError
    from facecontrol.models.stylegan2_nvlabs import load_nvlabs_pkl

    models, _ = room
    record = Persistent(
        _persistence_module(monkeypatch),
        {"type": "class", "class_name": "Generator", "state": {"_init_kwargs": {"k": shared_nesting(8)}}},
    )
    path = models / "ffhq.pkl"
    path.write_bytes(pickle.dumps({"G_ema": record}, protocol=4))
    start = time.perf_counter()
    refused(load_nvlabs_pkl, path, "pickle bomb", error=UnsafePickleError)
    assert time.perf_counter() - start < 2.0


def test_nested_lists_in_a_torch_state_dict(room):
    """torch's weights-only unpickler builds shared structures without expanding them; the loader refuses any
    entry that is not a tensor before anything walks it."""
    from facecontrol.models.token_mappers import load_token_mapper

    models, _ = room
    path = models / "net_id2token.pth"
    torch.save({"proj.weight": torch.zeros(2, 2), "proj.bias": shared_nesting(8)}, path)
    refused(load_token_mapper, path, "proj.bias", "not a tensor")


# --------------------------------------------------------------------------- npz, transformers, ONNX


def test_npz_with_object_arrays(room):
    from facecontrol.face.ict_model import load_ict_model

    models, marker = room
    path = models / "face_model.npz"
    np.savez(
        path,
        mean=np.zeros((3, 3)),
        id_basis=np.array([WritesMarker(marker)], dtype=object),
        exp_basis=np.zeros((1, 3, 3)),
        exp_names=np.array(["a"]),
    )
    refused(load_ict_model, path, "pickled Python objects")


MODELING_PY = """
from pathlib import Path
Path({marker!r}).write_text("custom code ran")
from transformers import CLIPVisionModel as EvilModel
"""


@pytest.mark.parametrize("how", ["auto_map", "code file only"])
def test_transformers_folder_with_custom_code(room, how):
    from transformers import CLIPVisionConfig

    from facecontrol.models.face_adapter_vision import load_clip_vision_tower

    models, marker = room
    folder = models / "vision_encoder"
    folder.mkdir()
    config = CLIPVisionConfig(
        hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=16
    ).to_dict()
    if how == "auto_map":
        config["auto_map"] = {"AutoModel": "modeling_evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "modeling_evil.py").write_text(MODELING_PY.format(marker=str(marker)))
    message = refused(load_clip_vision_tower, folder, "custom code")
    assert "modeling_evil.py" in message


def test_onnx_with_external_data(room):
    from onnx import TensorProto, helper

    from facecontrol.face.detect_scrfd import ScrfdFaceDetector

    models, _ = room
    weight = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4])
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "../../../../etc/passwd"), ("offset", "0"), ("length", "16")):
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = models / "scrfd_10g_bnkps.onnx"
    path.write_bytes(model.SerializeToString())
    refused(ScrfdFaceDetector, path, "etc/passwd", "single-file ONNX")


# --------------------------------------------------------------------------- damaged downloads


def _truncated(path: Path) -> Path:
    path.write_bytes(path.read_bytes()[: max(8, path.stat().st_size // 2)])
    return path


@pytest.mark.parametrize("kind", [".pth", ".safetensors", ".pkl", ".onnx", ".npz", ".mat"])
def test_truncated_files_say_download_again(room, kind):
    from safetensors.torch import save_file

    from facecontrol.face.bfm import BFMProjector
    from facecontrol.face.detect_scrfd import ScrfdFaceDetector
    from facecontrol.face.ict_model import load_ict_model
    from facecontrol.models.checkpoint import read_state
    from facecontrol.models.stylegan2_nvlabs import load_nvlabs_pkl

    models, _ = room
    path = models / f"model{kind}"
    state = {"w": torch.arange(4096.0)}
    if kind == ".pth":
        torch.save(state, path)
        call = read_state
    elif kind == ".safetensors":
        save_file(state, str(path))
        call = read_state
    elif kind == ".pkl":
        path.write_bytes(pickle.dumps({"G_ema": collections.OrderedDict(w=torch.arange(4096.0))}, protocol=4))
        call = load_nvlabs_pkl
    elif kind == ".onnx":
        from onnx import TensorProto, helper, numpy_helper

        weight = numpy_helper.from_array(np.arange(4096, dtype=np.float32), "w")
        graph = helper.make_graph(
            [helper.make_node("Add", ["x", "w"], ["y"])],
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4096])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4096])],
            [weight],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = 8
        path.write_bytes(model.SerializeToString())
        call = ScrfdFaceDetector
    elif kind == ".npz":
        np.savez(
            path,
            mean=np.zeros((300, 3)),
            id_basis=np.zeros((2, 300, 3)),
            exp_basis=np.zeros((2, 300, 3)),
            exp_names=np.array(["a", "b"]),
        )
        call = load_ict_model
    else:
        from scipy.io import savemat

        savemat(str(path), {"meanshape": np.zeros((1, 3000))})
        call = BFMProjector
    refused(call, _truncated(path), "download it again")


# --------------------------------------------------------------------------- fetch_models' archives


def _fetch_module():
    import importlib.util

    import facecontrol

    script = Path(facecontrol.__file__).resolve().parent / "scripts" / "fetch_models.py"
    spec = importlib.util.spec_from_file_location("fetch_models_hostile", script)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("layout", ["zip ../", "zip absolute", "tar ../", "tar symlink"])
def test_zip_slip_archive_in_fetch_models(tmp_path, layout):
    fetch = _fetch_module()
    work = tmp_path / "work"
    work.mkdir()
    archive = tmp_path / ("kit.zip" if layout.startswith("zip") else "kit.tar.gz")
    escape = tmp_path / "escaped.txt"
    if layout == "zip ../":
        with zipfile.ZipFile(archive, "w") as bundle:
            bundle.writestr("kit/FaceXModel/a.obj", b"v 0 0 0\n")
            bundle.writestr("../escaped.txt", b"outside")
    elif layout == "zip absolute":
        with zipfile.ZipFile(archive, "w") as bundle:
            bundle.writestr(str(escape), b"outside")
    else:
        with tarfile.open(archive, "w:gz") as bundle:
            if layout == "tar ../":
                info = tarfile.TarInfo("../escaped.txt")
                info.size = 7
                bundle.addfile(info, io.BytesIO(b"outside"))
            else:
                info = tarfile.TarInfo("kit/link")
                info.type, info.linkname = tarfile.SYMTYPE, str(escape)
                bundle.addfile(info)
    with pytest.raises(fetch.FetchError, match="outside|link") as caught:
        fetch.unpack(archive, work / "kit_out")
    assert repr("../escaped.txt") in str(caught.value) or "escaped" in str(caught.value) or "link" in str(caught.value)
    assert not escape.exists()
    assert not (tmp_path / "escaped.txt").exists() and not any(work.rglob("escaped.txt"))
