"""scripts/migrate_workflows.py turns a workflow saved with the old type names into the shipped one, and leaves
core nodes' sockets alone (core has a FACE_LANDMARKS type of its own)."""

from __future__ import annotations

import json
from pathlib import Path

import migrate_workflows

REPO_ROOT = Path(__file__).resolve().parents[2]


def _old(workflow: dict) -> dict:
    text = json.dumps(workflow)
    for old, new in migrate_workflows.renamed_types().items():
        text = text.replace(f'"{new}"', f'"{old}"')
    return json.loads(text)


def test_every_shipped_ui_workflow_migrates_back_to_itself(tmp_path):
    for path in sorted((REPO_ROOT / "example_workflows").glob("*.json")):
        current = json.loads(path.read_text())
        saved = tmp_path / path.name
        saved.write_text(json.dumps(_old(current)))
        assert migrate_workflows.main(["--check", str(saved)]) == (1 if "FACECONTROL_" in path.read_text() else 0)
        assert migrate_workflows.main([str(saved)]) == 0
        assert json.loads(saved.read_text()) == current, path.name
        assert migrate_workflows.main(["--check", str(saved)]) == 0


def test_core_nodes_keep_their_own_face_landmarks_type():
    graph = {
        "nodes": [
            {"id": 1, "type": "MediaPipeFaceLandmarker", "outputs": [{"type": "FACE_LANDMARKS"}]},
            {"id": 2, "type": "DrawFaceLandmarks", "inputs": [{"type": "FACE_LANDMARKS"}]},
            {"id": 3, "type": "FaceControlAdaptingMask", "inputs": [{"type": "FACE_LANDMARKS"}]},
        ],
        "links": [[1, 1, 0, 2, 0, "FACE_LANDMARKS"], [2, 4, 1, 3, 0, "FACE_LANDMARKS"]],
    }
    assert migrate_workflows.migrate_graph(graph, migrate_workflows.renamed_types()) == 2
    assert graph["nodes"][0]["outputs"][0]["type"] == "FACE_LANDMARKS"
    assert graph["nodes"][1]["inputs"][0]["type"] == "FACE_LANDMARKS"
    assert graph["nodes"][2]["inputs"][0]["type"] == "FACECONTROL_FACE_LANDMARKS"
    assert graph["links"][0][5] == "FACE_LANDMARKS" and graph["links"][1][5] == "FACECONTROL_FACE_LANDMARKS"
