"""The ComfyUI extension: registers model folders and collects each node module's nodes.

Node modules are the `*_nodes.py` files here. One that fails to import is logged with its error and
skipped, so one missing optional dependency never hides the rest of the pack.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil

from comfy_api.latest import ComfyExtension, io

from .common import register_model_folders

log = logging.getLogger("facecontrol")


def node_module_names() -> list[str]:
    """Every `*_nodes` module in this package, so adding a node module needs no registry edit."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name.endswith("_nodes"))


def load_node_classes() -> list[type[io.ComfyNode]]:
    classes: list[type[io.ComfyNode]] = []
    for name in node_module_names():
        try:
            module = importlib.import_module(f".{name}", __name__)
        except Exception:
            log.exception("FaceControl: node module %s failed to import; its nodes are unavailable", name)
            continue
        classes.extend(module.NODES)
    return classes


class FaceControlExtension(ComfyExtension):
    async def on_load(self) -> None:
        register_model_folders()

    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        register_model_folders()
        return load_node_classes()
