"""One-node short paths for each paper's common case, expanded at run time into the shipped API workflow.

Each composite node reads its paper's workflow from workflows/api/, keeps only the nodes its outputs depend
on, puts its own inputs where the workflow's loaders were (the photo, the frames, MODEL/CLIP/VAE) and its
widgets over the workflow's values, and hands that graph to ComfyUI (V3 node expansion). So a composite runs
exactly the modular nodes a user sees in the example workflow, never a second implementation, and a change
to the workflow changes the composite with it.
"""

from __future__ import annotations

import copy
import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from comfy_api.latest import io
from comfy_execution.graph_utils import GraphBuilder

from ..pipelines.pie.edit import EDIT_SLIDERS
from .checks import FaceControlNode
from .dva_nodes import NODES as DVA_NODES
from .face_adapter_nodes import NODES as FACE_ADAPTER_NODES
from .face_nodes import NODES as FACE_NODES
from .pie_nodes import NODES as PIE_NODES
from .spatial_nodes import NODES as SPATIAL_NODES

WORKFLOWS_DIR = Path(__file__).resolve().parents[1] / "workflows" / "api"
Link = tuple[str, int]


@dataclass(frozen=True, eq=False)
class Recipe:
    """How a composite node maps onto its workflow.

    feeds: the composite's socket inputs, each replacing one output of a workflow node (a loader) given as
    (node id, output slot, that node's class_type); widgets: the composite's widgets, each set on one
    workflow node's input; fixed: workflow inputs the composite sets to other values than the example's;
    outputs: the workflow outputs the composite returns, in order.
    """

    workflow: str
    feeds: dict[str, tuple[str, int, str]]
    widgets: dict[str, tuple[str, str]]
    outputs: tuple[Link, ...]
    fixed: dict[tuple[str, str], Any] = field(default_factory=dict)


def load_workflow(name: str) -> dict:
    return json.loads((WORKFLOWS_DIR / f"{name}.json").read_text())


def _links(node: dict) -> list[Link]:
    return [(v[0], int(v[1])) for v in node["inputs"].values() if _is_link(v)]


def _is_link(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int)


def needed_nodes(api: dict, outputs: tuple[Link, ...], fed: set[Link]) -> list[str]:
    """The workflow nodes the outputs depend on, walking back from them and stopping at fed outputs."""
    needed: set[str] = set()
    todo = [node for node, _ in outputs]
    while todo:
        nid = todo.pop()
        if nid in needed:
            continue
        if nid not in api:
            raise ValueError(f"the workflow has no node {nid}")
        needed.add(nid)
        todo.extend(src for src, slot in _links(api[nid]) if (src, slot) not in fed)
    return sorted(needed, key=int)


def check_recipe(recipe: Recipe, api: dict) -> None:
    """Raise when the workflow no longer fits the recipe (a node renumbered or retyped, an input renamed)."""
    for name, (nid, _slot, class_type) in recipe.feeds.items():
        if api.get(nid, {}).get("class_type") != class_type:
            raise ValueError(f"{recipe.workflow}: '{name}' replaces node {nid}, which is not a {class_type}")
    for nid, key in list(recipe.widgets.values()) + list(recipe.fixed):
        if nid not in api or key not in api[nid]["inputs"] or _is_link(api[nid]["inputs"][key]):
            raise ValueError(f"{recipe.workflow}: node {nid} has no widget input '{key}'")
    fed = {(nid, slot) for nid, slot, _ in recipe.feeds.values()}
    for nid in needed_nodes(api, recipe.outputs, fed):
        if nid in {n for n, _, _ in recipe.feeds.values()}:
            raise ValueError(f"{recipe.workflow}: node {nid} is fed by the composite but still needed")


def expand(recipe: Recipe, values: dict[str, Any], api: dict | None = None) -> tuple[dict, list[list]]:
    """The graph ComfyUI runs in place of the composite, and the links of its outputs."""
    api = api if api is not None else load_workflow(recipe.workflow)
    feeds = {(nid, slot): values[name] for name, (nid, slot, _) in recipe.feeds.items()}
    settings = dict(recipe.fixed) | {target: values[name] for name, target in recipe.widgets.items()}
    graph = GraphBuilder()
    for nid in needed_nodes(api, recipe.outputs, set(feeds)):
        inputs = {}
        for key, value in api[nid]["inputs"].items():
            if _is_link(value):
                link = (value[0], value[1])
                inputs[key] = feeds[link] if link in feeds else [graph.prefix + value[0], value[1]]
            else:
                inputs[key] = settings.get((nid, key), value)
        graph.node(api[nid]["class_type"], id=nid, **inputs)
    return graph.finalize(), [[graph.prefix + nid, slot] for nid, slot in recipe.outputs]


# ---------------------------------------------------------------- the composites' widgets


@functools.cache
def pack_node(class_type: str) -> type[FaceControlNode]:
    """The pack's node class of a workflow node (read once the model folders are registered: loaders list them)."""
    classes = {
        cls.define_schema().node_id: cls
        for cls in FACE_NODES + SPATIAL_NODES + FACE_ADAPTER_NODES + DVA_NODES + PIE_NODES
    }
    return classes[class_type]


def widget_like(recipe: Recipe, name: str, tooltip: str | None = None) -> io.Input:
    """The composite's widget `name`: the workflow node's own input spec (options, limits), with the
    example workflow's value as its default."""
    nid, key = recipe.widgets[name]
    node = load_workflow(recipe.workflow)[nid]
    spec = next(s for s in pack_node(node["class_type"]).define_schema().inputs if s.id == key)
    widget = copy.copy(spec)
    widget.id, widget.default = name, node["inputs"][key]
    if tooltip:
        widget.tooltip = tooltip
    return widget


FACE_ADAPTER_REENACT = Recipe(
    workflow="face_adapter_reenactment",
    feeds={
        "source_image": ("1", 0, "LoadImage"),
        "driver_image": ("2", 0, "LoadImage"),
        "model": ("20", 0, "CheckpointLoaderSimple"),
        "clip": ("20", 1, "CheckpointLoaderSimple"),
        "vae": ("21", 0, "VAELoader"),
    },
    widgets={"seed": ("28", "seed"), "steps": ("28", "steps")},
    fixed={("4", "select"): "largest"},  # the example drives by the 4th face of a group photo
    outputs=(("31", 0), ("30", 0)),
)
DVA_EDIT_VIDEO = Recipe(
    workflow="dva_video_edit",
    feeds={"frames": ("3", 0, "ImageFromBatch")},
    widgets={"attribute": ("8", "attribute"), "scale": ("8", "scale"), "steps": ("7", "steps")},
    outputs=(("10", 0), ("9", 0)),
)
PIE_EDITS = EDIT_SLIDERS
PIE_EDIT_PORTRAIT = Recipe(
    workflow="pie_portrait_edit",
    feeds={"image": ("1", 0, "LoadImage")},
    widgets={name: ("7", name) for name in PIE_EDITS},
    outputs=(("9", 0), ("8", 0)),
)


def _checked(recipe: Recipe) -> Recipe:
    """The recipe, checked against its workflow as it is on disk now (a cheap read; workflows can be edited)."""
    check_recipe(recipe, load_workflow(recipe.workflow))
    return recipe


class _Composite(FaceControlNode):
    RECIPE: Recipe

    @classmethod
    def execute(cls, **values) -> io.NodeOutput:
        graph, outputs = expand(_checked(cls.RECIPE), values)
        return io.NodeOutput(*outputs, expand=graph)


class FaceAdapterReenact(_Composite):
    RECIPE = FACE_ADAPTER_REENACT

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FaceControlFaceAdapterReenact",
            display_name="Face-Adapter Reenact",
            category="FaceControl/face_adapter",
            description="The source photo's face with the driver's pose, expression and gaze, pasted back into the "
            "source photo: the example workflow face_adapter_reenactment in one node (each photo's "
            "largest face; the Face-Adapter weights from models/face_adapter/). Open the example "
            "workflow to change any step.",
            inputs=[
                io.Image.Input("source_image", tooltip="the identity and look (its largest face)"),
                io.Image.Input("driver_image", tooltip="pose, expression and gaze (its largest face)"),
                io.Model.Input("model", tooltip="an SD1.5 model"),
                io.Clip.Input("clip", tooltip="its CLIP (the empty prompt)"),
                io.Vae.Input("vae", tooltip="the paper used sd-vae-ft-mse"),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True),
                io.Int.Input("steps", default=25, min=1, max=10000, tooltip="Euler steps (the paper: 25)"),
            ],
            outputs=[io.Image.Output(display_name="image"), io.Image.Output(display_name="crop_512")],
            enable_expand=True,
        )


class DVAEditVideo(_Composite):
    RECIPE = DVA_EDIT_VIDEO

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FaceControlDVAEditVideo",
            display_name="DVA Edit Video",
            category="FaceControl/dva",
            description="Edits one CelebA attribute of the face in every frame (Diffusion Video Autoencoders) and "
            "pastes the faces back through their masks: the example workflow dva_video_edit in one "
            "node (the DVA checkpoint it names, smoothed FFHQ crops of the largest face).",
            inputs=[
                io.Image.Input("frames", tooltip="the video's frames"),
                widget_like(DVA_EDIT_VIDEO, "attribute"),
                widget_like(DVA_EDIT_VIDEO, "scale", "a negative scale removes the attribute (-No_Beard adds a beard)"),
                widget_like(DVA_EDIT_VIDEO, "steps", "DDIM steps of the inversion: 100 for the paper's quality"),
            ],
            outputs=[io.Image.Output(display_name="frames"), io.Image.Output(display_name="crops")],
            enable_expand=True,
        )


class PIEEditPortrait(_Composite):
    RECIPE = PIE_EDIT_PORTRAIT

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FaceControlPIEEditPortrait",
            display_name="PIE Edit Portrait",
            category="FaceControl/PIE",
            description="Embeds the portrait's largest face in StyleGAN2 (PIE), edits head pose, expression and "
            "light, and pastes the edited face back: the example workflow pie_portrait_edit in one "
            "node (its generator, RigNet and step counts; open the workflow for real step counts).",
            inputs=[io.Image.Input("image", tooltip="the portrait")]
            + [widget_like(PIE_EDIT_PORTRAIT, name) for name in PIE_EDITS],
            outputs=[io.Image.Output(display_name="image"), io.Image.Output(display_name="crop")],
            enable_expand=True,
        )


NODES = [FaceAdapterReenact, DVAEditVideo, PIEEditPortrait]
