"""The SCRFD backend decodes a detector's outputs through real onnxruntime.

No SCRFD weights can be downloaded here, so the test writes an ONNX model with SCRFD's nine outputs
whose constant values encode one face at a known place, and checks boxes, points and scaling.
"""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from facecontrol.face.detect_scrfd import ScrfdFaceDetector, anchor_centres, choose_providers

SIZE = 640
STRIDES = (8, 16, 32)


def _scrfd_like_model(path, face_box, kps):
    """Scores/boxes/points with one anchor of stride 16 firing for `face_box` (in 640-space)."""
    outputs, nodes, levels = [], [], []
    cx, cy = (face_box[0] + face_box[2]) / 2, (face_box[1] + face_box[3]) / 2
    for stride in STRIDES:
        centres = anchor_centres(SIZE, stride, 2)
        scores = np.zeros((len(centres), 1), np.float32)
        dist = np.zeros((len(centres), 4), np.float32)
        offs = np.zeros((len(centres), 10), np.float32)
        if stride == 16:
            k = int(np.argmin(np.linalg.norm(centres - [cx, cy], axis=1)))
            c = centres[k]
            scores[k] = 0.9
            dist[k] = (
                np.array([c[0] - face_box[0], c[1] - face_box[1], face_box[2] - c[0], face_box[3] - c[1]]) / stride
            )
            offs[k] = ((kps - c) / stride).reshape(-1)
        levels.append((scores, dist, offs))
    for j, kind in enumerate(("score", "bbox", "kps")):
        for i, stride in enumerate(STRIDES):
            name = f"{kind}_{stride}"
            value = levels[i][j]
            nodes.append(helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value, name + "_v")))
            outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(value.shape)))
    graph = helper.make_graph(
        nodes, "scrfd_like", [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, SIZE, SIZE])], outputs
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)


def test_decodes_one_face_and_scales_back(tmp_path):
    box640 = np.array([200.0, 150.0, 330.0, 310.0])
    kps640 = np.array([[240, 210], [290, 210], [265, 240], [245, 275], [285, 275]], np.float64)
    path = tmp_path / "scrfd_10g_bnkps.onnx"
    _scrfd_like_model(str(path), box640, kps640)
    det = ScrfdFaceDetector(path)
    assert det.provider in choose_providers()
    frame = np.zeros((960, 1280, 3), np.uint8)  # scale 640/1280 = 0.5
    faces = det.detect(frame)
    assert len(faces) == 1
    np.testing.assert_allclose(faces[0].box, box640 * 2, atol=1e-3)
    np.testing.assert_allclose(faces[0].lm5, kps640 * 2, atol=1e-3)
    assert faces[0].lm68 is None and faces[0].score > 0.89
