"""Reading the golden fixtures recorded from the authors' implementations.

The folder comes from FACE_GOLDEN_DIR (default ../shared/golden beside the checkout). A missing
fixture folder fails the test: a golden test that is skipped counts as failed. Every check is recorded in
`Fixture.checked`, so the table-driven test (tests/golden/test_golden.py) can require that each recorded
output was compared.
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file

REPO_ROOT = Path(__file__).resolve().parents[1]


def golden_dir() -> Path:
    return Path(os.environ.get("FACE_GOLDEN_DIR", REPO_ROOT.parent / "shared" / "golden")).resolve()


def _fill_module():
    path = golden_dir() / "fill.py"
    spec = importlib.util.spec_from_file_location("face_golden_fill", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Fixture:
    name: str
    folder: Path
    meta: dict
    shapes: dict
    inputs: dict[str, torch.Tensor]
    outputs: dict[str, torch.Tensor]
    checked: set[str] = field(default_factory=set)

    @property
    def config(self) -> dict:
        return self.meta["config"]

    def filled_state_dict(self) -> dict[str, torch.Tensor]:
        return _fill_module().fill_state_dict(self.shapes, self.meta["seed"])

    def tolerance_for(self, output_name: str):
        tol = self.meta["tolerance"]
        return tol.get("per_output", {}).get(output_name, tol["relative_error"])

    def check(self, output_name: str, actual: torch.Tensor) -> None:
        """Compare one output with the recorded one under the fixture's tolerance rule."""
        expected = self.outputs[f"out.{output_name}"]
        self.checked.add(f"out.{output_name}")
        check_against(expected, actual, self.tolerance_for(output_name), f"{self.name}:{output_name}")


def fixture_names() -> list[str]:
    """The fixture folders present in golden_dir() (those with a meta.json)."""
    root = golden_dir()
    return sorted(p.name for p in root.iterdir() if (p / "meta.json").is_file()) if root.is_dir() else []


def load_fixture(name: str) -> Fixture:
    folder = golden_dir() / name
    if not (folder / "meta.json").is_file():
        raise FileNotFoundError(f"golden fixture {name!r} not found in {golden_dir()} (set FACE_GOLDEN_DIR)")
    meta = json.loads((folder / "meta.json").read_text())
    shapes = json.loads((folder / "shapes.json").read_text())
    tensors = load_file(str(folder / "io.safetensors"))
    inputs = {k: v for k, v in tensors.items() if k.startswith("in.")}
    outputs = {k: v for k, v in tensors.items() if k.startswith("out.")}
    return Fixture(name, folder, meta, shapes, inputs, outputs)


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return _fill_module().relative_error(actual, expected)


def check_against(expected: torch.Tensor, actual: torch.Tensor, rule, label: str) -> None:
    actual = torch.as_tensor(actual)
    assert tuple(actual.shape) == tuple(expected.shape), (
        f"{label}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    )
    if rule == "exact":
        assert torch.equal(actual.to(expected.dtype), expected), f"{label}: values differ (exact match required)"
        return
    if isinstance(rule, dict):
        _check_pixels(expected, actual, rule, label)
        return
    err = relative_error(actual, expected)
    assert err <= float(rule), f"{label}: relative error {err:.3e} > {float(rule):.1e}"


def _check_pixels(expected: torch.Tensor, actual: torch.Tensor, rule: dict, label: str) -> None:
    diff = (actual.double() - expected.double()).abs()
    n = diff.numel()
    measured = {
        "fraction_differing_max": float((diff > 0).sum()) / n,
        "fraction_off_by_more_than_2_max": float((diff > 2).sum()) / n,
        "mean_abs_diff_levels_max": float(diff.mean()),
    }
    for key, limit in rule.items():
        assert measured[key] <= limit, f"{label}: {key[:-4]} = {measured[key]:.5f} > {limit}"
