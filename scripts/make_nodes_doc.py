"""Write docs/NODES.md from the node schemas a running ComfyUI reports (/object_info), FaceControl nodes only.

    python scripts/make_nodes_doc.py                 # starts a headless ComfyUI with the pack, writes docs/NODES.md
    python scripts/make_nodes_doc.py --url http://127.0.0.1:8188   # read a running server instead
    python scripts/make_nodes_doc.py --check         # exit 1 when docs/NODES.md is not what the schemas give

Lists for every node its id, category, description, inputs (type, default, range, options, tooltip) and
outputs. Combo inputs whose options are model files list only their default, since a folder's files differ
from machine to machine.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from comfy_client import ComfyClient, ComfyServer

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "NODES.md"
FILE_OPTION = re.compile(r"\.(ckpt|pt|pth|pkl|safetensors|bin|onnx|task|tar|dat|npz|mat|json)$", re.IGNORECASE)
HEADER = """# FaceControl nodes

Every node of the pack with its inputs, outputs and defaults, generated from the node schemas by
`python scripts/make_nodes_doc.py` (do not edit by hand; the integration tests check that it is current).
"""


def pack_nodes(object_info: dict) -> dict[str, dict]:
    return {k: v for k, v in object_info.items() if k.startswith("FaceControl")}


def escape(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def input_type_and_options(spec: list) -> tuple[str, dict, list]:
    kind = spec[0] if spec else "?"
    options = dict(spec[1]) if len(spec) > 1 and isinstance(spec[1], dict) else {}
    choices: list = []
    if isinstance(kind, list):
        kind, choices = "COMBO", kind
    elif kind == "COMBO":
        choices = list(options.get("options", []))
    return str(kind), options, choices


def describe_input(name: str, spec: list, optional: bool) -> str:
    kind, options, choices = input_type_and_options(spec)
    facts = []
    if "default" in options:
        facts.append(f"default `{options['default']}`")
    if "min" in options or "max" in options:
        facts.append(
            f"range {options.get('min', '-inf')}..{options.get('max', 'inf')}"
            + (f" step {options['step']}" if "step" in options else "")
        )
    if kind == "COMBO" and (not choices or any(FILE_OPTION.search(str(c)) for c in choices)):
        facts.append("a file from the model folder")
    elif choices:
        facts.append("one of " + ", ".join(f"`{c}`" for c in choices))
    if optional:
        facts.append("optional")
    return f"| `{name}` | {escape(kind)} | {escape('; '.join(facts))} | {escape(options.get('tooltip', ''))} |"


def node_section(node_id: str, info: dict) -> str:
    lines = [
        f"### {info.get('display_name') or node_id}",
        "",
        f"`{node_id}` in `{info.get('category', '')}`" + (" (output node)" if info.get("output_node") else ""),
        "",
    ]
    if info.get("description"):
        lines += [escape(info["description"]), ""]
    inputs = info.get("input", {})
    order = info.get("input_order", {})
    rows = []
    for group in ("required", "optional"):
        specs = inputs.get(group, {})
        for name in order.get(group, list(specs)):
            if name in specs:
                rows.append(describe_input(name, specs[name], group == "optional"))
    if rows:
        lines += ["| input | type | default, range, options | tooltip |", "|---|---|---|---|", *rows, ""]
    outputs = info.get("output", [])
    if outputs:
        names = info.get("output_name") or outputs
        tooltips = info.get("output_tooltips") or [""] * len(outputs)
        lines += ["| output | type | tooltip |", "|---|---|---|"]
        lines += [f"| {escape(n)} | {escape(t)} | {escape(tip or '')} |" for n, t, tip in zip(names, outputs, tooltips)]
        lines.append("")
    return "\n".join(lines)


def render(object_info: dict) -> str:
    nodes = pack_nodes(object_info)
    by_category: dict[str, list[str]] = {}
    for node_id, info in nodes.items():
        by_category.setdefault(info.get("category", ""), []).append(node_id)
    parts = [HEADER, f"{len(nodes)} nodes.", ""]
    for category in sorted(by_category):
        parts.append(f"## {category}\n")
        for node_id in sorted(by_category[category], key=lambda n: nodes[n].get("display_name") or n):
            parts.append(node_section(node_id, nodes[node_id]))
    return "\n".join(parts).rstrip() + "\n"


def object_info(url: str | None) -> dict:
    if url:
        return ComfyClient(url).get_json("/object_info")
    with tempfile.TemporaryDirectory() as work:
        with ComfyServer(Path(work)) as server:
            return server.get_json("/object_info")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running ComfyUI with the pack (default: start one)")
    parser.add_argument("--out", type=Path, default=DOC)
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    text = render(object_info(args.url))
    if args.check:
        current = args.out.read_text() if args.out.is_file() else ""
        if current != text:
            print(f"{args.out} is out of date: run python scripts/make_nodes_doc.py", file=sys.stderr)
            return 1
        return 0
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
