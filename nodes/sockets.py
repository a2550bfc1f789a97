"""The pack's custom ComfyUI types: one socket per payload, every name prefixed FACECONTROL_.

The prefix keeps our sockets apart from core's (ComfyUI 0.23 registers its own FACE_LANDMARKS with another
payload): the frontend only lets equal type names connect, so a core socket can never be wired into ours.

Convention: the socket objects are UPPER_CASE, named like their type without the prefix; the Python
classes they carry are CamelCase and live with the code that makes them (face/, pipelines/, nodes/).
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from comfy_api.latest import io

PREFIX = "FACECONTROL_"

FACES = io.Custom(PREFIX + "FACES")
FACE_CROP = io.Custom(PREFIX + "FACE_CROP")
FACE_3DMM = io.Custom(PREFIX + "FACE_3DMM")
FACE_LANDMARKS = io.Custom(PREFIX + "FACE_LANDMARKS")
FACE_ADAPTER = io.Custom(PREFIX + "FACE_ADAPTER")
FACE_ADAPTER_TOKENS = io.Custom(PREFIX + "FACE_ADAPTER_TOKENS")
DVA_MODEL = io.Custom(PREFIX + "DVA_MODEL")
DVA_LATENT = io.Custom(PREFIX + "DVA_LATENT")
STYLEGAN = io.Custom(PREFIX + "STYLEGAN")
RIGNET = io.Custom(PREFIX + "RIGNET")
PIE_LATENT = io.Custom(PREFIX + "PIE_LATENT")
PIE_EMBED_SETTINGS = io.Custom(PREFIX + "PIE_EMBED_SETTINGS")
PIE_EDIT_SETTINGS = io.Custom(PREFIX + "PIE_EDIT_SETTINGS")

# Core ComfyUI's own types, used on purpose by the converter nodes (nodes/interop_nodes.py). ComfyUI 0.23+ registers
# FACE_LANDMARKS itself; this declares the same name so our converters connect to core's sockets.
CORE_FACE_LANDMARKS = io.Custom("FACE_LANDMARKS")
CORE_TYPES = {CORE_FACE_LANDMARKS.io_type}

# Old type name -> current name, for workflows saved before a rename (web/renamed_types.json, which the frontend
# extension and scripts/migrate_workflows.py read too).
RENAMED_TYPES: dict[str, str] = {
    old: new
    for renames in json.loads((Path(__file__).resolve().parents[1] / "web" / "renamed_types.json").read_text()).values()
    for old, new in renames.items()
}

# Type name -> (module relative to the pack, class name) of the Python object the socket carries. Imported on
# first use, so this module imports no node module.
CARRIED_CLASSES: dict[str, tuple[str, str]] = {
    FACES.io_type: ("face.types", "FaceSet"),
    FACE_CROP.io_type: ("face.types", "FaceCrop"),
    FACE_3DMM.io_type: ("face.face3dmm", "Face3DMM"),
    FACE_LANDMARKS.io_type: ("face.face3dmm", "CropLandmarks"),
    FACE_ADAPTER.io_type: ("nodes.face_adapter_nodes", "FaceAdapterBundle"),
    FACE_ADAPTER_TOKENS.io_type: ("torch", "Tensor"),
    DVA_MODEL.io_type: ("nodes.dva_nodes", "DVAModel"),
    DVA_LATENT.io_type: ("pipelines.dva", "DVALatent"),
    STYLEGAN.io_type: ("nodes.pie_nodes", "StyleGANHandle"),
    RIGNET.io_type: ("nodes.pie_nodes", "RigNetHandle"),
    PIE_LATENT.io_type: ("nodes.pie_nodes", "PIELatent"),
    PIE_EMBED_SETTINGS.io_type: ("pipelines.pie.embed", "EmbedConfig"),
    PIE_EDIT_SETTINGS.io_type: ("pipelines.pie.edit", "DirectEditConfig"),
}


def carried_class(type_name: str) -> type | None:
    """The class a pack socket carries, or None for a type that is not the pack's (or cannot be imported)."""
    where = CARRIED_CLASSES.get(type_name)
    if where is None:
        return None
    module_name, class_name = where
    package = __package__.rsplit(".", 1)[0]
    try:
        module = importlib.import_module(module_name if module_name == "torch" else f"{package}.{module_name}")
    except ImportError:
        return None
    return getattr(module, class_name, None)
