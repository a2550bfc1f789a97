"""The install path users take: the pack copied into a ComfyUI's custom_nodes/ (as `git clone` or
ComfyUI-Manager leave it: a plain folder, no symlink, no editable install), `pip install -r requirements.txt`
in ComfyUI's environment with nothing left to install, and a start that lists every node without an error.

The ComfyUI tree is a temporary copy of the one in use (COMFYUI_DIR), so the checkout's own link is absent,
and the server runs without the tests' PYTHONPATH, so nothing but the copied folder can provide the nodes.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from comfy_client import REPO_ROOT, ComfyServer, comfyui_dir, venv_python

pytestmark = pytest.mark.integration

# ComfyUI's own run-time folders, skipped at the top of the tree only: ComfyUI 0.33 has a package
# comfy_api/input that a pattern matching "input" at any depth would leave out
TOP_LEVEL_SKIPS = {".git", "output", "input", "temp", "user"}


def skip_in_comfyui(root: Path):
    def ignore(folder: str, names: list[str]) -> set[str]:
        skipped = {name for name in names if name == "__pycache__"}
        if Path(folder) == root:
            skipped |= TOP_LEVEL_SKIPS & set(names)
        if Path(folder) == root / "custom_nodes":
            skipped |= {"facecontrol"} & set(names)
        return skipped

    return ignore


def pack_files() -> list[str]:
    """What a clone holds: the tracked files plus new ones not ignored (so a working tree is tested as is)."""
    out = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO_ROOT, capture_output=True, check=True
    ).stdout.decode()
    return [name for name in out.split("\0") if name and (REPO_ROOT / name).is_file()]


def expected_node_ids() -> set[str]:
    """The node ids the sources declare (docs/NODES.md is generated from the same list)."""
    ids: set[str] = set()
    for path in (REPO_ROOT / "nodes").glob("*.py"):
        ids |= set(re.findall(r'node_id="(FaceControl\w+)"', path.read_text()))
    return ids


@pytest.fixture(scope="module")
def user_comfyui(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("user") / "ComfyUI"
    shutil.copytree(comfyui_dir(), root, ignore=skip_in_comfyui(comfyui_dir()), symlinks=True)
    pack = root / "custom_nodes" / "facecontrol"
    for name in pack_files():
        (pack / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, pack / name)
    return root


def test_requirements_install_nothing_new(user_comfyui):
    requirements = user_comfyui / "custom_nodes" / "facecontrol" / "requirements.txt"
    done = subprocess.run(
        [
            str(venv_python()),
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--no-index",
            "--disable-pip-version-check",
            "-r",
            str(requirements),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Would install" not in done.stdout, done.stdout


def test_a_copied_pack_lists_every_node_without_an_import_error(user_comfyui, tmp_path, monkeypatch):
    monkeypatch.delenv("PYTHONPATH", raising=False)
    pack = user_comfyui / "custom_nodes" / "facecontrol"
    assert pack.is_dir() and not pack.is_symlink()
    with ComfyServer(tmp_path / "work", comfyui_root=user_comfyui) as server:
        info = server.get_json("/object_info")
        log_text = server.log_text()
    ours = {name: node for name, node in info.items() if name.startswith("FaceControl")}
    expected = expected_node_ids()
    assert len(expected) >= 20
    assert set(ours) == expected, f"missing {sorted(expected - set(ours))}, unexpected {sorted(set(ours) - expected)}"
    assert {node["python_module"] for node in ours.values()} == {"custom_nodes.facecontrol"}
    # core's own optional extras may fail to import on a bare environment (API nodes): only our lines count
    ours_log = [line for line in log_text.splitlines() if "facecontrol" in line.lower()]
    for marker in ("IMPORT FAILED", "Cannot import", "failed to import"):
        assert not [line for line in ours_log if marker in line], "\n".join(ours_log)
    assert any(str(pack) in line and "seconds" in line for line in ours_log), "ComfyUI's import times name the copy"
