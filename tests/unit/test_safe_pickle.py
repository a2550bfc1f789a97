"""The restricted NVlabs pickle reader refuses code and never runs persistence module_src."""

import builtins
import collections
import os
import pickle
import sys
import types

import numpy as np
import pytest
import torch
from torch import nn

from facecontrol.models.safe_pickle import PersistentObject, UnsafePickleError, load_network_pickle
from facecontrol.models.stylegan2_nvlabs import Generator, load_nvlabs_pkl


class CallsOsSystem:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class CallsExec:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return builtins.exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",)


class NestedStorageBytes:
    """A storage whose nested torch.save bytes are themselves a malicious pickle."""

    def __init__(self, payload):
        self.payload = payload

    def __reduce__(self):
        return torch.storage._load_from_bytes, (self.payload,)


def write_pickle(path, obj):
    path.write_bytes(pickle.dumps(obj, protocol=4))
    return path


@pytest.mark.parametrize("attack", [CallsOsSystem, CallsExec])
def test_code_calling_pickle_is_refused(tmp_path, attack):
    marker = tmp_path / "marker"
    path = write_pickle(tmp_path / "evil.pkl", {"G_ema": collections.OrderedDict(a=attack(marker))})
    with pytest.raises(UnsafePickleError, match="refusing to load global"):
        load_network_pickle(path)
    assert not marker.exists()


def test_malicious_nested_storage_is_refused(tmp_path):
    marker = tmp_path / "marker"
    path = write_pickle(
        tmp_path / "evil.pkl", {"G_ema": NestedStorageBytes(pickle.dumps(CallsOsSystem(marker), protocol=2))}
    )
    with pytest.raises(UnsafePickleError, match="tensor storage"):
        load_network_pickle(path)
    assert not marker.exists()


# --------------------------------------------------------------------------- fake torch_utils.persistence


def exec_module_src(meta):
    """What NVlabs' own _reconstruct_persistent_obj does first: exec the pickled source text."""
    # the hostile behaviour under test; noqa keeps comfy-cli's registry check (ruff S102) quiet about it
    exec(meta["module_src"], {})  # noqa: S102
    return meta


@pytest.fixture
def fake_persistence(monkeypatch):
    """Make `torch_utils.persistence._reconstruct_persistent_obj` picklable by reference in this process."""
    package = types.ModuleType("torch_utils")
    module = types.ModuleType("torch_utils.persistence")
    monkeypatch.setattr(exec_module_src, "__module__", "torch_utils.persistence")
    monkeypatch.setattr(exec_module_src, "__qualname__", "_reconstruct_persistent_obj")
    module._reconstruct_persistent_obj = exec_module_src
    package.persistence = module
    monkeypatch.setitem(sys.modules, "torch_utils", package)
    monkeypatch.setitem(sys.modules, "torch_utils.persistence", module)
    return module


class PersistentStub:
    """Pickles like a torch_utils.persistence object: reconstruct(meta) with source, class name and state."""

    def __init__(self, class_name, state, module_src):
        self.meta = {"type": "class", "version": 6, "module_src": module_src, "class_name": class_name, "state": state}

    def __reduce__(self):
        return sys.modules["torch_utils.persistence"]._reconstruct_persistent_obj, (self.meta,)


def stub_tree(module: nn.Module, module_src: str, init_kwargs: dict | None = None) -> PersistentStub:
    state = {
        "training": False,
        "_parameters": collections.OrderedDict(module._parameters),
        "_buffers": collections.OrderedDict(module._buffers),
        "_non_persistent_buffers_set": set(),
        "_modules": collections.OrderedDict(
            (name, stub_tree(child, module_src)) for name, child in module._modules.items()
        ),
        "_init_args": (),
        "_init_kwargs": init_kwargs or {},
        "weight_gain": np.float64(0.125),
        "dtype": torch.float32,
    }
    return PersistentStub(type(module).__name__, state, module_src)


def marker_src(marker) -> str:
    return f"open({str(marker)!r}, 'w').write('module_src ran')\n"


def test_persistence_stub_is_recorded_without_running_module_src(tmp_path, fake_persistence):
    marker = tmp_path / "marker"
    layer = nn.Linear(3, 2)
    layer.register_buffer("stat", torch.arange(4.0))
    path = write_pickle(tmp_path / "snapshot.pkl", {"G_ema": stub_tree(layer, marker_src(marker), {"in_features": 3})})

    data = load_network_pickle(path)

    assert not marker.exists()
    record = data["G_ema"]
    assert isinstance(record, PersistentObject)
    assert record.class_name == "Linear" and record.init_kwargs == {"in_features": 3}
    assert record.module_src_chars > 0
    state = record.state_dict()
    assert set(state) == {"weight", "bias", "stat"}
    assert torch.equal(state["weight"], layer.weight.detach()) and torch.equal(state["stat"], layer.stat)


def test_same_pickle_does_run_module_src_with_plain_pickle(tmp_path, fake_persistence):
    """Control: the stub is live, so the restricted reader really is what keeps it from running."""
    marker = tmp_path / "marker"
    payload = pickle.dumps(stub_tree(nn.Linear(2, 2), marker_src(marker)), protocol=4)
    pickle.loads(payload)
    assert marker.exists()


@torch.no_grad()
def test_tiny_nvlabs_generator_round_trip(tmp_path, fake_persistence):
    marker = tmp_path / "marker"
    torch.manual_seed(0)
    kwargs = {
        "z_dim": 16,
        "c_dim": 0,
        "w_dim": 16,
        "img_resolution": 8,
        "img_channels": 3,
        "mapping_kwargs": {"num_layers": 2},
        "synthesis_kwargs": {"channel_base": 64, "channel_max": 8},
    }
    original = Generator(**kwargs).eval()
    with torch.no_grad():
        for param in original.parameters():
            param.normal_()
    snapshot = {"G": None, "D": None, "G_ema": stub_tree(original, marker_src(marker), kwargs), "augment_pipe": None}
    path = write_pickle(tmp_path / "network-snapshot.pkl", snapshot)

    rebuilt = load_nvlabs_pkl(path)

    info = rebuilt.load_info

    assert not marker.exists()
    assert info["num_ws"] == original.num_ws == rebuilt.num_ws
    z = torch.randn(2, 16)
    assert torch.equal(rebuilt(z), original(z))


# --------------------------------------------------------------------------- bounds (pickle bombs)


def shared_nesting(levels: int, fan: int = 10):
    """A list whose shared references expand to fan**levels items: a few hundred bytes pickled."""
    value = 0
    for _ in range(levels):
        value = [value] * fan
    return value


def test_nested_shared_references_bomb_is_refused_early(tmp_path, fake_persistence):
    """The kind of file the probe found: ~300 bytes whose _init_kwargs expand to 10**8 objects
    (the old reader spent 5.8 s and 200 MB on 10**7, 76 s and 2.1 GB on the probe's file)."""
    import time
    import tracemalloc

    record = PersistentStub("Generator", {"_init_kwargs": {"mapping_kwargs": shared_nesting(8)}}, "pass\n")
    path = write_pickle(tmp_path / "bomb.pkl", {"G_ema": record})
    assert path.stat().st_size < 400
    tracemalloc.start()
    start = time.perf_counter()
    with pytest.raises(UnsafePickleError, match="pickle bomb") as refused:
        load_network_pickle(path)
    elapsed = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert str(path) in str(refused.value)
    assert elapsed < 2.0 and peak < 16 << 20, (elapsed, peak)


def test_large_memo_index_is_refused(tmp_path):
    # EMPTY_LIST, LONG_BINPUT 2**31-1: the C unpickler would grow its memo to that many slots
    path = tmp_path / "memo.pkl"
    path.write_bytes(b"\x80\x04]r\xff\xff\xff\x7f.")
    with pytest.raises(UnsafePickleError, match="memo index 2147483647") as refused:
        load_network_pickle(path)
    assert str(path) in str(refused.value)


def test_deep_nesting_is_refused(tmp_path):
    # an empty tuple wrapped 5000 times by TUPLE1: any recursive walk of it overflows the stack
    path = tmp_path / "deep.pkl"
    path.write_bytes(b"\x80\x04)" + b"\x85" * 5000 + b".")
    with pytest.raises(UnsafePickleError, match="nested 5000 deep"):
        load_network_pickle(path)


def test_length_past_the_end_is_refused_before_reading(tmp_path):
    # BINBYTES8 declaring 2**40 bytes in a 20-byte file
    path = tmp_path / "long.pkl"
    path.write_bytes(b"\x80\x04\x8e" + (1 << 40).to_bytes(8, "little") + b"abc.")
    with pytest.raises(UnsafePickleError, match="runs past the end"):
        load_network_pickle(path)


def test_truncated_snapshot_names_the_file_and_says_download_again(tmp_path):
    from facecontrol.models.checkpoint import ModelFileError

    source = golden_snapshot()
    path = tmp_path / "network-snapshot.pkl"
    path.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    with pytest.raises(ModelFileError, match="download it again") as refused:
        load_nvlabs_pkl(path)
    assert str(path) in str(refused.value) and "weights_only" not in str(refused.value)


def golden_snapshot():
    from golden_fixtures import golden_dir

    return golden_dir() / "sg2_nvlabs_pkl" / "network-snapshot.pkl"


def test_golden_snapshot_is_within_bounds():
    from facecontrol.models.safe_pickle import check_pickle_bounds

    with open(golden_snapshot(), "rb") as handle:
        stats = check_pickle_bounds(handle)
    # a real snapshot: about one object per opcode, shallow, no more bytes than the file
    assert stats.expanded_objects < 2 * stats.opcodes and stats.depth < 64
    assert stats.expanded_bytes < 1.1 * golden_snapshot().stat().st_size
    generator = load_nvlabs_pkl(golden_snapshot())
    info = generator.load_info
    assert info["num_ws"] == generator.num_ws > 0
