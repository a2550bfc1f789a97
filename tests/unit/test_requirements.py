"""requirements.txt (what ComfyUI-Manager and a `git clone` install) is pyproject's dependency list, and
pyproject carries the registry's [tool.comfy] fields."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import tomllib

REPO_ROOT = Path(__file__).resolve().parents[2]


def requirement_lines() -> list[str]:
    lines = (REPO_ROOT / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def pyproject() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def test_requirements_equal_pyproject_dependencies():
    assert requirement_lines() == pyproject()["project"]["dependencies"]


def test_requirements_are_plain_specifiers():
    """ComfyUI-Manager runs pip on each line: no options, URLs or editable installs."""
    for line in requirement_lines():
        assert not line.startswith("-") and "://" not in line and " @ " not in line, line


def test_tool_comfy_names_the_comfyui_it_needs():
    comfy = pyproject()["tool"]["comfy"]
    assert comfy["PublisherId"] and comfy["DisplayName"]
    assert comfy["requires-comfyui"].startswith(">=")


def test_registry_fields_follow_the_spec():
    """What comfy-cli's `comfy node validate` reads (docs/COMPATIBILITY.md: it passes offline): a node id of
    letters, digits and single - _ . not starting with a digit, a three-number version, a repository URL."""
    project = pyproject()["project"]
    assert (
        re.fullmatch(r"[A-Za-z](?:[A-Za-z0-9]|[-_.](?=[A-Za-z0-9]))*", project["name"]) and len(project["name"]) < 100
    )
    assert "comfyui" not in project["name"].lower()
    assert re.fullmatch(r"\d+\.\d+\.\d+", project["version"])
    assert project["urls"]["Repository"].startswith("https://")


def test_no_exec_or_eval_in_the_pack():
    """The registry's security rules (ruff S102, S307) warn on exec/eval: none in shipped code or tests,
    except the one hostile-pickle test that marks its exec with noqa."""
    for path in REPO_ROOT.rglob("*.py"):
        rel = path.relative_to(REPO_ROOT)
        if rel.parts[0] in {".venv", "comfyui", ".cache", "data"}:
            continue
        lines = path.read_text(errors="replace").splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in {"exec", "eval"}:
                assert "noqa: S102" in lines[node.lineno - 1] or "noqa: S307" in lines[node.lineno - 1], (
                    f"{rel}:{node.lineno}"
                )
