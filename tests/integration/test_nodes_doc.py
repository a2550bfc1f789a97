"""docs/NODES.md is what the running server's node schemas give (regenerate: python scripts/make_nodes_doc.py)."""

import pytest
from make_nodes_doc import DOC, pack_nodes, render

pytestmark = pytest.mark.integration


def test_nodes_doc_is_current(comfy):
    info = comfy.get_json("/object_info")
    assert len(pack_nodes(info)) >= 20
    assert render(info) == DOC.read_text(), "docs/NODES.md is out of date: run python scripts/make_nodes_doc.py"
