"""Every FaceControl node checks the values it is given against its own schema, in a real server.

ComfyUI checks widget limits only for typed values; values arriving through links (a primitive node, another
node, the API) and NaN typed into a float widget pass its validation. These prompts send exactly those, and
the server must answer each with a message naming the node and the input, then serve the next prompt.
Type names: no pack socket type may equal a type core ComfyUI registers (core's FACE_LANDMARKS clashed).
"""

from __future__ import annotations

import math

import pytest
import torch

from comfy_client import WorkflowError, load_workflow

pytestmark = pytest.mark.integration


def _align(size_input) -> dict:
    prompt = {k: v for k, v in load_workflow("face_photo_pipeline").items() if k in ("1", "2", "3", "8")}
    prompt["3"]["inputs"]["size"] = size_input
    return prompt


def _error(comfy, prompt: dict) -> str:
    with pytest.raises(WorkflowError) as raised:
        comfy.run(prompt, timeout=300)
    return str(raised.value)


def _still_serves(comfy) -> None:
    entry = comfy.run(load_workflow("face_photo_pipeline"), timeout=300)
    assert entry["status"]["status_str"] == "success"


@pytest.mark.parametrize(
    "size, limit",
    [
        (12000, "above its maximum 2048"),
        (0, "below its minimum 64"),
        (-64, "below its minimum 64"),
        (-1, "below its minimum 64"),
    ],
)
def test_a_linked_size_outside_the_widget_limits_is_refused(comfy, size, limit):
    prompt = _align(["20", 0])
    prompt["20"] = {"class_type": "PrimitiveInt", "inputs": {"value": size}}
    message = _error(comfy, prompt)
    assert f"Align and Crop Faces: 'size' = {size} is {limit}" in message
    _still_serves(comfy)


def test_nan_typed_into_a_float_widget_is_refused(comfy):
    prompt = load_workflow("face_photo_pipeline")
    prompt["2"]["inputs"].update(select="closest", x=math.nan)
    assert "Detect Faces: 'x' is nan; give a finite number" in _error(comfy, prompt)
    _still_serves(comfy)


def test_nan_pixels_in_an_image_are_refused_with_the_frame(comfy):
    prompt = load_workflow("face_photo_pipeline")
    # ImageBlend with a NaN factor (NaN passes ComfyUI's own min/max check) makes every pixel NaN
    prompt["30"] = {
        "class_type": "ImageBlend",
        "inputs": {"image1": ["1", 0], "image2": ["1", 0], "blend_factor": math.nan, "blend_mode": "normal"},
    }
    prompt["2"]["inputs"]["image"] = ["30", 0]
    assert "Detect Faces: 'image' has NaN or infinite values in frame 0" in _error(comfy, prompt)
    _still_serves(comfy)


def test_nan_in_a_mask_is_refused(comfy):
    prompt = load_workflow("face_photo_pipeline")
    prompt["31"] = {"class_type": "SolidMask", "inputs": {"value": math.nan, "width": 256, "height": 256}}
    prompt["4"]["inputs"]["mask"] = ["31", 0]
    assert "Paste Faces Back: 'mask' has NaN or infinite values in frame 0" in _error(comfy, prompt)
    _still_serves(comfy)


def test_no_pack_type_equals_a_core_type(comfy):
    info = comfy.get_json("/object_info")
    ours, core = set(), set()
    for name, node in info.items():
        types = set(node.get("output", []))
        for section in ("required", "optional"):
            for spec in node.get("input", {}).get(section, {}).values():
                if isinstance(spec[0], str):
                    types.add(spec[0])
        (ours if name.startswith("FaceControl") else core).update(t for t in types if isinstance(t, str))
    custom = {t for t in ours if t.startswith("FACECONTROL_")}
    assert custom, "no pack types found in /object_info"
    assert not custom & core, f"pack types also registered by core: {custom & core}"
    builtin = {
        "IMAGE",
        "MASK",
        "INT",
        "FLOAT",
        "STRING",
        "BOOLEAN",
        "COMBO",
        "CONDITIONING",
        "LATENT",
        "MODEL",
        "CLIP",
        "VAE",
        "CONTROL_NET",
        "VIDEO",
    }
    interop = {"FACE_LANDMARKS"}  # core's own type, taken on purpose by the converter nodes
    assert ours - custom - builtin <= interop, f"pack types without the FACECONTROL_ prefix: {ours - custom - builtin}"


# ---------------------------------------------------------------- in-process: inputs no core node produces


@pytest.fixture(scope="module")
def nodes(comfy_in_process):
    from comfy_api.latest import io

    from facecontrol.nodes import checks, face_nodes, spatial_nodes

    return io, checks, face_nodes, spatial_nodes


def test_a_foreign_object_under_a_pack_type_names_the_expected_type(nodes):
    _, _, _, spatial_nodes = nodes
    core_payload = {"frames": [[]], "image_size": (64, 64)}  # what core's MediaPipe FACE_LANDMARKS carries
    with pytest.raises(ValueError, match=r"'faces' expects a FACECONTROL_FACES \(FaceSet\) but got a builtins.dict"):
        spatial_nodes.Fit3DMM.execute(torch.rand(1, 64, 64, 3), core_payload, "ict_facekit", "per frame", 0.0)


def test_an_output_that_comes_out_nan_is_an_error_naming_node_and_frame(nodes):
    io, checks, _, _ = nodes

    class Broken(checks.FaceControlNode):
        @classmethod
        def define_schema(cls):
            return io.Schema(
                node_id="FaceControlTestBroken",
                display_name="Broken",
                inputs=[io.Image.Input("image")],
                outputs=[io.Image.Output(display_name="image")],
            )

        @classmethod
        def execute(cls, image):
            out = image.clone()
            out[2, 0, 0, 0] = math.nan
            return io.NodeOutput(out)

    with pytest.raises(ValueError, match=r"Broken: its output 'image' came out with NaN or infinite values in frame 2"):
        Broken.execute(torch.rand(3, 8, 8, 3))


def _detect_faces_inputs(**changes) -> dict:
    inputs = dict(
        image=torch.rand(1, 64, 64, 3),
        backend="mediapipe",
        select="largest",
        index=0,
        order="left-right",
        x=0.5,
        y=0.5,
        track=True,
        if_no_face="error",
    )
    return {**inputs, **changes}


def test_an_int_widget_given_a_whole_float_runs_and_a_fraction_is_refused(nodes):
    _, _, face_nodes, _ = nodes
    with pytest.raises(ValueError, match=r"'index' must be a whole number, got 1.5"):
        face_nodes.DetectFaces.execute(**_detect_faces_inputs(select="index", index=1.5))


@pytest.mark.parametrize("name, value", [("select", "biggest"), ("order", "random")])
def test_a_choice_that_is_not_an_option_is_refused_by_name(nodes, name, value):
    """ComfyUI validates typed combo values only; one arriving from another node's COMBO output is not."""
    _, _, face_nodes, _ = nodes
    with pytest.raises(ValueError, match=rf"Detect Faces: '{name}' = '{value}' is not one of its choices"):
        face_nodes.DetectFaces.execute(**_detect_faces_inputs(**{name: value}))
