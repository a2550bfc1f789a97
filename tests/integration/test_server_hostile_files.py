"""Hostile and damaged generator files in a real ComfyUI server (Load StyleGAN2 of the PIE workflow): each is
refused with a message naming the file, nothing it carries runs, and the server answers the next prompt.
The same files against the loaders alone: tests/unit/test_hostile_files.py."""

from __future__ import annotations

import os
import pickle
import re
import sys
import time
import types

import pytest

from comfy_client import WorkflowError, load_workflow

pytestmark = pytest.mark.integration


class WritesMarker:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _bomb_pickle(monkeypatch) -> bytes:
    """~340 bytes whose persistent record's _init_kwargs expand to 10**8 objects through shared references."""

    def reconstruct(meta):
        return meta

    reconstruct.__module__, reconstruct.__qualname__ = "torch_utils.persistence", "_reconstruct_persistent_obj"
    package, module = types.ModuleType("torch_utils"), types.ModuleType("torch_utils.persistence")
    module._reconstruct_persistent_obj = reconstruct
    package.persistence = module
    monkeypatch.setitem(sys.modules, "torch_utils", package)
    monkeypatch.setitem(sys.modules, "torch_utils.persistence", module)

    class Persistent:
        def __reduce__(self):
            value = 0
            for _ in range(8):
                value = [value] * 10
            return reconstruct, ({"type": "class", "class_name": "Generator", "state": {"_init_kwargs": {"k": value}}},)

    return pickle.dumps({"G_ema": Persistent()}, protocol=4)


def _run_with_generator(comfy, name: str) -> str:
    prompt = load_workflow("pie_portrait_edit")
    prompt["4"]["inputs"]["generator"] = name
    with pytest.raises(WorkflowError) as err:
        comfy.run(prompt)
    return str(err.value)


def _still_serving(comfy):
    entry = comfy.run(load_workflow("face_group_select"))
    assert comfy.output_files(entry)


def test_hostile_and_damaged_generator_files_are_refused(comfy, model_root, tmp_path, monkeypatch):
    folder = model_root / "stylegan2"
    marker = tmp_path / "MARKER"
    good = (folder / "ffhq.pkl").read_bytes()
    files = {
        "hostile_reduce.pkl": (pickle.dumps({"G_ema": WritesMarker(marker)}, protocol=4), r"posix\.system"),
        "hostile_bomb.pkl": (_bomb_pickle(monkeypatch), r"pickle bomb"),
        "damaged_half.pkl": (good[: len(good) // 2], r"damaged or incomplete.*download it again"),
    }
    for name, (data, _) in files.items():
        (folder / name).write_bytes(data)
    try:
        for name, (_, pattern) in files.items():
            start = time.monotonic()
            message = _run_with_generator(comfy, name)
            assert str(folder / name) in message, message
            assert re.search(pattern, message, re.S), message
            assert "weights_only=False" not in message
            assert time.monotonic() - start < 60, name
            assert not marker.exists()
            _still_serving(comfy)
    finally:
        for name in files:
            (folder / name).unlink(missing_ok=True)
