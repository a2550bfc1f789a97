"""The unit tier runs without ComfyUI: no unit test may find a ComfyUI folder on sys.path, nor leave one there.

Tests that need ComfyUI in the process belong in tests/comfy (fixture `comfy_in_process`); tests that need a
server belong in tests/integration.
"""

from __future__ import annotations

import sys

import pytest

from comfy_client import comfyui_dir


def _comfy_on_path() -> bool:
    target = comfyui_dir().resolve()
    return any(entry and _same(entry, target) for entry in sys.path)


def _same(entry: str, target) -> bool:
    from pathlib import Path

    try:
        return Path(entry).resolve() == target
    except OSError:
        return False


@pytest.fixture(autouse=True)
def _without_comfyui():
    assert not _comfy_on_path(), f"a ComfyUI folder ({comfyui_dir()}) is on sys.path in a unit test"
    yield
    assert not _comfy_on_path(), f"this unit test left ComfyUI ({comfyui_dir()}) on sys.path"
