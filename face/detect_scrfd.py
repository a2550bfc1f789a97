"""insightface SCRFD detector (antelopev2's scrfd_10g_bnkps.onnx) run directly on onnxruntime.

SCRFD gives boxes and five points, the detector Face-Adapter uses. For the 68/478 points the mediapipe
landmarker is run in a window around each SCRFD face when one is available.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from .detect_mediapipe import MediaPipeFaceDetector, box_iou
from .types import Face

log = logging.getLogger(__name__)

BACKEND = "insightface-scrfd"
PREFERRED_PROVIDERS = (
    "CUDAExecutionProvider",
    "ROCMExecutionProvider",
    "CoreMLExecutionProvider",
    "CPUExecutionProvider",
)


def choose_providers(requested: str = "auto") -> list[str]:
    """Execution providers that this onnxruntime build really has, best first."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if requested != "auto":
        if requested not in available:
            raise ValueError(f"onnxruntime provider {requested!r} is not available here; available: {available}")
        return [requested]
    return [p for p in PREFERRED_PROVIDERS if p in available] or list(available)


def check_single_file_onnx(onnx_path: str | Path) -> None:
    """Refuse an ONNX model whose tensors live in other files (external data can name any path to read)."""
    import onnx
    from onnx.external_data_helper import uses_external_data

    from ..models.checkpoint import ModelFileError, reading_model_file

    with reading_model_file(onnx_path, "ONNX model"):
        model = onnx.load(str(onnx_path), load_external_data=False)
    tensors = [t for t in model.graph.initializer] + [
        a.t for node in model.graph.node for a in node.attribute if a.HasField("t")
    ]
    external = sorted(
        {entry.value for t in tensors if uses_external_data(t) for entry in t.external_data if entry.key == "location"}
    )
    if external:
        raise ModelFileError(
            f"{onnx_path} keeps tensors in other files ({', '.join(external[:5])}); the pack only "
            "loads single-file ONNX models such as insightface's release (download it again)"
        )


class ScrfdFaceDetector:
    def __init__(
        self,
        onnx_path: str | Path,
        landmarker: MediaPipeFaceDetector | None = None,
        providers: str = "auto",
        det_size: int = 640,
        threshold: float = 0.5,
        nms_iou: float = 0.4,
    ):
        import onnxruntime as ort

        from ..models.checkpoint import reading_model_file

        check_single_file_onnx(onnx_path)
        with reading_model_file(onnx_path, "ONNX model"):
            self.session = ort.InferenceSession(str(onnx_path), providers=choose_providers(providers))
        self.provider = self.session.get_providers()[0]
        log.info("SCRFD %s runs on %s", Path(onnx_path).name, self.provider)
        self.input_name = self.session.get_inputs()[0].name
        n_out = len(self.session.get_outputs())
        if n_out not in (6, 9):
            raise ValueError(f"{onnx_path}: {n_out} outputs; an SCRFD detector has 6 (boxes) or 9 (boxes + 5 points)")
        self.levels = 3
        self.has_kps = n_out == 9
        self.strides = (8, 16, 32)
        self.anchors_per_cell = 2
        self.det_size = det_size
        self.threshold = threshold
        self.nms_iou = nms_iou
        self.landmarker = landmarker
        self.blendshape_names = landmarker.blendshape_names if landmarker else []

    def _raw_detect(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = rgb.shape[:2]
        scale = self.det_size / max(h, w)
        resized = cv2.resize(rgb, (int(round(w * scale)), int(round(h * scale))))
        canvas = np.zeros((self.det_size, self.det_size, 3), np.float32)
        canvas[: resized.shape[0], : resized.shape[1]] = resized
        blob = ((canvas - 127.5) / 128.0).transpose(2, 0, 1)[None].astype(np.float32)
        outputs = [o.reshape(-1, o.shape[-1]) for o in self.session.run(None, {self.input_name: blob})]
        boxes, kps = decode_scrfd(
            outputs, self.strides, self.anchors_per_cell, self.det_size, self.threshold, self.has_kps
        )
        keep = nms(boxes, self.nms_iou)
        return boxes[keep] / np.array([scale] * 4 + [1.0]), kps[keep] / scale

    def detect(self, rgb: np.ndarray, tiles: str = "auto") -> list[Face]:
        boxes, kps = self._raw_detect(rgb)
        return [self._face(rgb, b, k) for b, k in zip(boxes, kps)]

    def detect_near(self, rgb: np.ndarray, box: np.ndarray) -> list[Face]:
        return self.detect(rgb)

    def _face(self, rgb: np.ndarray, box: np.ndarray, kps: np.ndarray) -> Face:
        face = Face(
            box=box[:4].astype(np.float64), score=float(box[4]), lm68=None, lm5=kps.astype(np.float64), backend=BACKEND
        )
        if self.landmarker is not None:
            near = self.landmarker.detect_near(rgb, face.box)
            match = max(near, key=lambda f: box_iou(f.box, face.box), default=None)
            if match is not None and box_iou(match.box, face.box) > 0.3:
                face.lm68, face.lm478 = match.lm68, match.lm478
                face.blendshapes, face.head_transform = match.blendshapes, match.head_transform
                self.blendshape_names = self.landmarker.blendshape_names
        return face


def anchor_centres(size: int, stride: int, per_cell: int) -> np.ndarray:
    n = size // stride
    ys, xs = np.mgrid[:n, :n]
    centres = np.stack([xs, ys], axis=-1).reshape(-1, 2).astype(np.float32) * stride
    return np.repeat(centres, per_cell, axis=0)


def decode_scrfd(
    outputs: list[np.ndarray], strides, per_cell: int, size: int, threshold: float, has_kps: bool
) -> tuple[np.ndarray, np.ndarray]:
    """SCRFD's outputs (scores per level, then box distances, then point offsets) -> (M,5) boxes, (M,5,2) points."""
    levels = len(strides)
    all_boxes, all_kps = [], []
    for i, stride in enumerate(strides):
        scores = outputs[i][:, 0]
        dist = outputs[levels + i] * stride
        centres = anchor_centres(size, stride, per_cell)
        hit = scores >= threshold
        c = centres[hit]
        d = dist[hit]
        boxes = np.stack([c[:, 0] - d[:, 0], c[:, 1] - d[:, 1], c[:, 0] + d[:, 2], c[:, 1] + d[:, 3], scores[hit]], 1)
        all_boxes.append(boxes)
        if has_kps:
            off = outputs[2 * levels + i][hit] * stride
            all_kps.append(c[:, None, :] + off.reshape(-1, 5, 2))
        else:
            all_kps.append(np.zeros((len(boxes), 5, 2), np.float32))
    boxes = np.concatenate(all_boxes) if all_boxes else np.zeros((0, 5), np.float32)
    kps = np.concatenate(all_kps) if all_kps else np.zeros((0, 5, 2), np.float32)
    return boxes, kps


def nms(boxes: np.ndarray, iou: float) -> list[int]:
    order = list(np.argsort(-boxes[:, 4])) if len(boxes) else []
    keep: list[int] = []
    for i in order:
        if all(box_iou(boxes[i], boxes[k]) < iou for k in keep):
            keep.append(int(i))
    return keep
