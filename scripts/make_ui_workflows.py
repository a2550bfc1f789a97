"""Write the UI-format (LiteGraph) workflow for every API workflow in workflows/api/.

The node schemas come from a running ComfyUI's /object_info, so socket and widget order is exactly what
the frontend expects. A Note node carries each workflow's description from workflows/notes/<name>.md.
Each goes to example_workflows/<name>.json with a thumbnail <name>.jpg (a drawing of the graph's stages):
ComfyUI's template browser lists a pack's example_workflows/*.json and shows <name>.jpg beside each.

    python scripts/make_ui_workflows.py            # starts a temporary ComfyUI
    python scripts/make_ui_workflows.py --url http://127.0.0.1:8188
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import tempfile
from pathlib import Path

from workflow_thumbnail import draw_thumbnail

from comfy_client import REPO_ROOT, UI_WORKFLOWS_DIR, ComfyServer

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
log = logging.getLogger("make_ui_workflows")


def is_widget(spec) -> bool:
    kind = spec[0]
    return isinstance(kind, list) or kind in WIDGET_TYPES


def ordered_inputs(info: dict) -> list[tuple[str, list]]:
    out = []
    for section in ("required", "optional"):
        out.extend(info["input"].get(section, {}).items())
    return out


def has_seed_control(name: str, spec) -> bool:
    """The frontend adds a control-after-generate widget to INT inputs that ask for one, and to every INT
    named seed or noise_seed that does not refuse it."""
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    if "control_after_generate" in options:
        return bool(options["control_after_generate"])
    return spec[0] == "INT" and name in ("seed", "noise_seed")


# Stages of a face workflow, left to right; each becomes a named group box in the UI graph.
STAGES = (
    "inputs",
    "models",
    "one node",
    "faces",
    "spatial condition",
    "tokens",
    "DVA",
    "PIE",
    "sampling",
    "blend and paste",
    "outputs",
)
STAGE_COLORS = {
    "inputs": "#3f789e",
    "models": "#8A8",
    "one node": "#a1309b",
    "faces": "#b06634",
    "spatial condition": "#a1309b",
    "tokens": "#88A",
    "DVA": "#b58b2a",
    "PIE": "#b58b2a",
    "sampling": "#444",
    "blend and paste": "#3f789e",
    "outputs": "#8A8",
}
INPUT_NODES = {"LoadImage", "LoadVideo", "GetVideoComponents", "ImageFromBatch", "RepeatImageBatch"}
OUTPUT_NODES = {
    "SaveImage",
    "PreviewImage",
    "SaveAnimatedWEBP",
    "SaveVideo",
    "CreateVideo",
    "PreviewAny",
    "FaceControlPreviewFaces",
    "FaceControlVideoMetrics",
}
TOKEN_NODES = {"CLIPTextEncode", "FaceControlFaceAdapterIdentity", "FaceControlFaceAdapterAttributes"}
PASTE_NODES = {"FaceControlPasteBack", "FaceControlFaceAdapterBlend"}
# the composite nodes (nodes/composite_nodes.py): a whole example workflow in one node
ONE_NODE = {"FaceControlFaceAdapterReenact", "FaceControlDVAEditVideo", "FaceControlPIEEditPortrait"}
NODE_WIDTH, COLUMN_GAP, ROW_GAP, GROUP_PAD, TITLE_H, SLOT_H, IMAGE_PREVIEW_H = 330, 70, 30, 20, 40, 26, 300


def stage_of(class_type: str, category: str) -> str:
    if class_type in INPUT_NODES:
        return "inputs"
    if class_type in OUTPUT_NODES:
        return "outputs"
    if class_type in PASTE_NODES:
        return "blend and paste"
    if class_type in ONE_NODE:
        return "one node"
    if class_type in TOKEN_NODES:
        return "tokens"
    if class_type.startswith("FaceControlLoad") or category.startswith("loaders"):
        return "models"
    by_category = {
        "FaceControl/faces": "faces",
        "FaceControl/3dmm": "spatial condition",
        "FaceControl/dva": "DVA",
        "FaceControl/PIE": "PIE",
    }
    return by_category.get(category, "sampling")


def node_height(info: dict, node: dict) -> int:
    slots = len(ordered_inputs(info)) + len(info["output"])
    preview = IMAGE_PREVIEW_H if node["class_type"] in ("LoadImage", "LoadVideo") else 0
    return TITLE_H + SLOT_H * max(1, slots) + preview


def depth_of(api: dict) -> dict[str, int]:
    depth: dict[str, int] = {}

    def visit(nid: str) -> int:
        if nid not in depth:
            links = [
                v[0]
                for v in api[nid]["inputs"].values()
                if isinstance(v, list) and len(v) == 2 and isinstance(v[0], str)
            ]
            depth[nid] = 1 + max((visit(src) for src in links), default=-1)
        return depth[nid]

    for nid in api:
        visit(nid)
    return depth


def layout(api: dict, object_info: dict) -> tuple[dict[str, list[int]], list[dict]]:
    """Node positions in stage columns (stacked by depth in the graph) and one group box per stage."""
    depth = depth_of(api)
    stages: dict[str, list[str]] = {}
    for nid in sorted(api, key=lambda n: (depth[n], int(n))):
        info = object_info[api[nid]["class_type"]]
        stages.setdefault(stage_of(api[nid]["class_type"], info.get("category", "")), []).append(nid)
    positions, groups, x = {}, [], 60
    for stage in (s for s in STAGES if s in stages):
        y = 60 + TITLE_H
        for nid in stages[stage]:
            positions[nid] = [x + GROUP_PAD, y]
            y += node_height(object_info[api[nid]["class_type"]], api[nid]) + ROW_GAP
        groups.append(
            {
                "title": stage,
                "bounding": [x, 60, NODE_WIDTH + 2 * GROUP_PAD, y - 60],
                "color": STAGE_COLORS[stage],
                "font_size": 24,
                "flags": {},
            }
        )
        x += NODE_WIDTH + 2 * GROUP_PAD + COLUMN_GAP
    return positions, groups


def api_to_ui(api: dict, object_info: dict, note: str) -> dict:
    positions, groups = layout(api, object_info)
    depth = depth_of(api)
    nodes, links = [], []
    link_id = 0
    outputs_links: dict[tuple[str, int], list[int]] = {}
    ui_nodes = {}
    for order, (nid, node) in enumerate(sorted(api.items(), key=lambda kv: (depth[kv[0]], int(kv[0])))):
        info = object_info[node["class_type"]]
        inputs, widgets = [], []
        for name, spec in ordered_inputs(info):
            value = node["inputs"].get(name)
            linked = isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)
            if is_widget(spec):
                default = spec[1].get("default") if len(spec) > 1 and isinstance(spec[1], dict) else None
                widgets.append(default if linked or value is None else value)
                if (
                    spec[1].get("image_upload") or spec[1].get("video_upload")
                    if len(spec) > 1 and isinstance(spec[1], dict)
                    else False
                ):
                    widgets.append("image")
                if has_seed_control(name, spec):
                    widgets.append("fixed")  # the frontend's seed control widget follows the seed
                if not linked:
                    continue
            kind = "COMBO" if isinstance(spec[0], list) else spec[0]
            entry = {"name": name, "type": kind, "link": None}
            if is_widget(spec):
                entry["widget"] = {"name": name}
            if linked:
                link_id += 1
                src, slot = value
                links.append(
                    [
                        link_id,
                        int(src),
                        slot,
                        int(nid),
                        len(inputs),
                        object_info[api[src]["class_type"]]["output"][slot],
                    ]
                )
                outputs_links.setdefault((src, slot), []).append(link_id)
                entry["link"] = link_id
            inputs.append(entry)
        ui_nodes[nid] = {
            "id": int(nid),
            "type": node["class_type"],
            "pos": positions[nid],
            "size": [NODE_WIDTH, node_height(info, node)],
            "flags": {},
            "order": order,
            "mode": 0,
            "inputs": inputs,
            "outputs": [],
            "properties": {"Node name for S&R": node["class_type"]},
            "widgets_values": widgets,
        }
        if "_meta" in node:
            ui_nodes[nid]["title"] = node["_meta"].get("title")
    for nid, ui in ui_nodes.items():
        info = object_info[api[nid]["class_type"]]
        names = info.get("output_name", info["output"])
        ui["outputs"] = [
            {"name": names[i], "type": t, "links": outputs_links.get((nid, i), []), "slot_index": i}
            for i, t in enumerate(info["output"])
        ]
        nodes.append(ui)
    last_id = max(int(n) for n in api) + 1
    nodes.append(
        {
            "id": last_id,
            "type": "Note",
            "pos": [60, -300],
            "size": [620, 260],
            "flags": {},
            "order": len(nodes),
            "mode": 0,
            "inputs": [],
            "outputs": [],
            "properties": {"text": ""},
            "widgets_values": [note],
        }
    )
    return {
        "last_node_id": last_id,
        "last_link_id": link_id,
        "nodes": nodes,
        "links": links,
        "groups": groups,
        "config": {},
        "extra": {"ds": {"scale": 0.6, "offset": [0, 360]}},
        "version": 0.4,
    }


def section_is_optional(info: dict, name: str) -> bool:
    return name in info["input"].get("optional", {})


def read_note(name: str) -> str:
    path = REPO_ROOT / "workflows" / "notes" / f"{name}.md"
    if not path.is_file():
        raise SystemExit(f"{path} is missing: every workflow needs a note describing it")
    return path.read_text().strip()


def write_all(object_info: dict, names: list[str]) -> list[Path]:
    written = []
    api_paths = sorted((REPO_ROOT / "workflows" / "api").glob("*.json"))
    UI_WORKFLOWS_DIR.mkdir(exist_ok=True)
    for api_path in api_paths:
        if names and api_path.stem not in names:
            continue
        api = json.loads(api_path.read_text())
        ui = api_to_ui(api, object_info, read_note(api_path.stem))
        out = UI_WORKFLOWS_DIR / api_path.name
        out.write_text(json.dumps(ui, indent=1) + "\n")
        thumbnail = out.with_suffix(".jpg")
        draw_thumbnail(ui, title_of(api_path.stem)).save(thumbnail, quality=85)
        written += [out, thumbnail]
    if not names:
        remove_stale({p.stem for p in api_paths})
    return written


def title_of(name: str) -> str:
    """The note's first line without the pack's name: what the workflow does."""
    first = read_note(name).splitlines()[0]
    what = first.split(":", 1)[1].strip() if first.startswith("FaceControl") and ":" in first else first
    what = re.sub(r"\s*\([^)]*\)", "", what).split(". ")[0].rstrip(".")  # no citation in a thumbnail
    return what[:1].upper() + what[1:]


def remove_stale(names: set[str]) -> None:
    """A workflow whose API file is gone leaves no UI copy or thumbnail behind for the browser to list."""
    for path in sorted(UI_WORKFLOWS_DIR.iterdir()):
        if path.suffix in (".json", ".jpg") and path.stem not in names:
            log.info("removing %s (no workflows/api/%s.json)", path.relative_to(REPO_ROOT), path.stem)
            path.unlink()


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="an already running ComfyUI with the pack")
    parser.add_argument("names", nargs="*", help="workflow names to regenerate (default: all)")
    args = parser.parse_args()
    if args.url:
        import urllib.request

        object_info = json.loads(urllib.request.urlopen(args.url + "/object_info").read())
    else:
        with tempfile.TemporaryDirectory() as tmp, ComfyServer(Path(tmp)) as server:
            object_info = server.get_json("/object_info")
    for path in write_all(object_info, args.names):
        log.info("wrote %s", path.relative_to(REPO_ROOT))


if __name__ == "__main__":
    main()
