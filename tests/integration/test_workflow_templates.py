"""ComfyUI's template browser finds the pack's UI workflows: /workflow_templates lists every one of
example_workflows/*.json under the pack's folder name, and the workflow and its thumbnail are served where
the frontend fetches them (/api/workflow_templates/<pack>/<name>.json and .jpg)."""

from __future__ import annotations

import io
import json
from pathlib import Path

from PIL import Image

from comfy_client import UI_WORKFLOWS_DIR, comfyui_dir

REPO_ROOT = Path(__file__).resolve().parents[2]


def pack_folder_name() -> str:
    """The pack's folder name in the server's custom_nodes/ (a clone or a link to this checkout)."""
    for entry in sorted((comfyui_dir() / "custom_nodes").iterdir()):
        if entry.resolve() == REPO_ROOT.resolve():
            return entry.name
    raise AssertionError(f"no folder of {comfyui_dir() / 'custom_nodes'} is this checkout")


def test_template_browser_lists_every_ui_workflow_with_its_thumbnail(comfy):
    shipped = sorted(p.stem for p in UI_WORKFLOWS_DIR.glob("*.json"))
    assert shipped, "example_workflows/ is empty"
    assert sorted(p.stem for p in UI_WORKFLOWS_DIR.glob("*.jpg")) == shipped, "every workflow needs a thumbnail"
    assert not (REPO_ROOT / "workflows" / "ui").exists(), "one copy of the UI workflows only"
    pack = pack_folder_name()
    listed = comfy.get_json("/workflow_templates")
    assert sorted(listed.get(pack, [])) == shipped, f"/workflow_templates: {listed}"
    for name in shipped:
        served = json.loads(comfy.get_bytes(f"/api/workflow_templates/{pack}/{name}.json"))
        assert served == json.loads((UI_WORKFLOWS_DIR / f"{name}.json").read_text()), name
        thumbnail = Image.open(io.BytesIO(comfy.get_bytes(f"/api/workflow_templates/{pack}/{name}.jpg")))
        assert thumbnail.format == "JPEG" and thumbnail.width >= 256 and thumbnail.height >= 192, name
