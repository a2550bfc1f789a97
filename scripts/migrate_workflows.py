"""Rewrite UI workflows saved with FaceControl's older socket type names to the current ones.

The frontend extension (web/facecontrol.js) does the same on every load, so this is only needed to update
files on disk (to share them, or for tools that read them). API-format workflows carry no type names and need
no change.

    python scripts/migrate_workflows.py my_workflow.json [more.json ...]      # rewrites in place
    python scripts/migrate_workflows.py --check my_workflow.json              # exit 1 if a file needs it
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

RENAMES_FILE = Path(__file__).resolve().parents[1] / "web" / "renamed_types.json"
log = logging.getLogger("migrate_workflows")


def renamed_types() -> dict[str, str]:
    return {old: new for renames in json.loads(RENAMES_FILE.read_text()).values() for old, new in renames.items()}


def migrate_graph(graph: dict, renames: dict[str, str]) -> int:
    """Rename old types on FaceControl nodes' slots and on links that touch them; returns how many changed."""
    ours = {node["id"] for node in graph.get("nodes", []) if str(node.get("type", "")).startswith("FaceControl")}
    changed = 0
    for node in graph.get("nodes", []):
        if node["id"] not in ours:
            continue
        for slot in node.get("inputs", []) + node.get("outputs", []):
            if slot.get("type") in renames:
                slot["type"] = renames[slot["type"]]
                changed += 1
    for link in graph.get("links", []):
        if isinstance(link, list):
            origin, target, kind = link[1], link[3], link[5]
        else:
            origin, target, kind = link.get("origin_id"), link.get("target_id"), link.get("type")
        if kind in renames and (origin in ours or target in ours):
            if isinstance(link, list):
                link[5] = renames[kind]
            else:
                link["type"] = renames[kind]
            changed += 1
    for subgraph in graph.get("definitions", {}).get("subgraphs", []):
        changed += migrate_graph(subgraph, renames)
    return changed


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--check", action="store_true", help="only report; exit 1 when a file needs migrating")
    args = parser.parse_args(argv)
    renames = renamed_types()
    needs = 0
    for path in args.files:
        graph = json.loads(path.read_text())
        if "nodes" not in graph:
            log.info("%s: API format (no type names), nothing to do", path)
            continue
        changed = migrate_graph(graph, renames)
        needs += bool(changed)
        if changed and not args.check:
            path.write_text(json.dumps(graph, indent=1) + "\n")
        log.info("%s: %d type names %s", path, changed, "to rename" if args.check else "renamed")
    return 1 if args.check and needs else 0


if __name__ == "__main__":
    sys.exit(main())
