"""The composite nodes' recipes still fit the shipped API workflows they expand (a renumbered node, a renamed
input or a loader that is still needed fails here, not in a user's graph), and an expansion is the
workflow's own sub-graph: the same nodes and values, the composite's inputs where the loaders were."""

from __future__ import annotations

import pytest

from comfy_client import load_workflow


@pytest.fixture(scope="module")
def composites(comfy_in_process):
    from facecontrol.nodes import composite_nodes
    from facecontrol.nodes.common import register_model_folders

    register_model_folders()  # the loaders' schemas list their folders
    return composite_nodes


def test_every_recipe_fits_its_workflow(composites):
    for node in composites.NODES:
        recipe = node.RECIPE
        composites.check_recipe(recipe, load_workflow(recipe.workflow))
        schema = node.define_schema()
        assert schema.enable_expand
        assert {i.id for i in schema.inputs} == set(recipe.feeds) | set(recipe.widgets), schema.node_id
        assert len(schema.outputs) == len(recipe.outputs)


def test_a_workflow_that_drifted_is_refused(composites):
    api = load_workflow("dva_video_edit")
    api["8"]["inputs"]["strength"] = api["8"]["inputs"].pop("scale")
    with pytest.raises(ValueError, match="no widget input 'scale'"):
        composites.check_recipe(composites.DVA_EDIT_VIDEO, api)
    api = load_workflow("pie_portrait_edit")
    api["1"]["class_type"] = "LoadImageMask"
    with pytest.raises(ValueError, match="not a LoadImage"):
        composites.check_recipe(composites.PIE_EDIT_PORTRAIT, api)


def test_widget_defaults_are_the_example_workflows_values(composites):
    api = load_workflow("pie_portrait_edit")
    inputs = {i.id: i for i in composites.PIEEditPortrait.define_schema().inputs}
    assert inputs["yaw"].default == api["7"]["inputs"]["yaw"]
    assert (inputs["yaw"].min, inputs["yaw"].max) == next(
        (s.min, s.max) for s in composites.pack_node("FaceControlPIEEdit").define_schema().inputs if s.id == "yaw"
    )


def test_expansion_is_the_workflows_subgraph(composites):
    api = load_workflow("face_adapter_reenactment")
    values = {
        "source_image": "SOURCE",
        "driver_image": "DRIVER",
        "model": "MODEL",
        "clip": "CLIP",
        "vae": "VAE",
        "seed": 5,
        "steps": 3,
    }
    graph, outputs = composites.expand(composites.FACE_ADAPTER_REENACT, values, api)
    prefix = outputs[0][0][: -len("31")]
    by_id = {key[len(prefix) :]: node for key, node in graph.items()}
    shown = {nid for nid, node in api.items() if node["class_type"] in ("SaveImage", "PreviewAny")}
    dropped = {"1", "2", "20", "21"} | shown  # the loaders fed by the composite, and the save and preview nodes
    assert set(by_id) == set(api) - dropped
    assert outputs == [[prefix + "31", 0], [prefix + "30", 0]]
    for nid, node in by_id.items():
        assert node["class_type"] == api[nid]["class_type"]
    assert by_id["3"]["inputs"]["image"] == "SOURCE" and by_id["4"]["inputs"]["image"] == "DRIVER"
    assert by_id["22"]["inputs"]["clip"] == "CLIP" and by_id["29"]["inputs"]["vae"] == "VAE"
    # the sampler takes the user's MODEL through the release-UNet switch, as in the workflow
    assert by_id["35"]["inputs"]["model"] == "MODEL" and by_id["28"]["inputs"]["model"] == [prefix + "35", 0]
    assert by_id["28"]["inputs"]["seed"] == 5
    assert by_id["28"]["inputs"]["positive"] == [prefix + "26", 0]
    assert by_id["4"]["inputs"]["select"] == "largest"
    assert by_id["5"]["inputs"] == api["5"]["inputs"] | {"image": "SOURCE", "faces": [prefix + "3", 0]}
