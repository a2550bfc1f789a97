"""Face nodes: detect, align and crop, paste back, preview. Every node works on IMAGE batches."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from comfy_api.latest import io

from .. import model_names as names
from ..face import align as face_align
from ..face.paste import crop_area_mask, paste_back
from ..face.preview import draw_face, draw_no_face
from ..face.select import detect_face_set
from ..face.types import FaceCrop as FaceCropData
from ..face.types import FaceSet
from ..model_files import ModelFileNotFound
from .checks import FaceControlNode
from .common import (
    cached_object,
    check_batch,
    check_same_frames,
    image_to_uint8,
    mask_batch,
    progress,
    resolve_model,
    uint8_to_image,
)
from .face_selection import FaceChoice, selection_inputs
from .sockets import FACE_CROP, FACES

log = logging.getLogger("facecontrol")

BACKENDS = ("auto", "mediapipe", "insightface-scrfd")
AUTHORS_FFHQ = "ffhq (DVA authors' chain)"
CONVENTIONS = ("ffhq", "arcface256", "faceadapter512", AUTHORS_FFHQ)


def _mediapipe_detector(path: Path, max_faces: int):
    from ..face.detect_mediapipe import MediaPipeFaceDetector

    return MediaPipeFaceDetector(path, max_faces=max_faces)


def _scrfd_detector(path: Path, max_faces: int):
    from ..face.detect_scrfd import ScrfdFaceDetector

    return ScrfdFaceDetector(path, landmarker=get_detector("mediapipe", max_faces))


def model_present(name: str) -> bool:
    """Whether a manifest file resolves in ComfyUI's model folders (for the `auto` choices)."""
    try:
        resolve_model(name)
    except ModelFileNotFound:
        return False
    return True


def files_stamp(file_names) -> str:
    """Which of the manifest files resolve (path and mtime): a node's fingerprint, so a file that appears or goes
    re-runs the `auto` choices instead of serving ComfyUI's cached outputs."""
    stamps = []
    for name in file_names:
        try:
            path = resolve_model(name)
            stamps.append(f"{path}:{path.stat().st_mtime_ns}")
        except ModelFileNotFound:
            stamps.append(f"{name}:missing")
    return "|".join(stamps)


def network_dtype(device=None) -> torch.dtype:
    """The dtype ComfyUI's helpers pick for the device: bf16, else fp16 where supported, else fp32 (CPU, or
    --force-fp32). The pack's plain-PyTorch networks (token mappers, 3DMM regressor, masks) run in it."""
    import comfy.model_management as mm

    device = mm.get_torch_device() if device is None else device
    if mm.should_use_bf16(device, prioritize_performance=False):
        return torch.bfloat16
    if mm.should_use_fp16(device, prioritize_performance=False):
        return torch.float16
    return torch.float32


def _build_in_dtype(path: Path, build, dtype: str) -> torch.nn.Module:
    return build(path).to(getattr(torch, dtype))


def in_network_dtype(build):
    """A builder whose network is cast to network_dtype() (part of the cache key, so a change rebuilds)."""
    return functools.partial(_build_in_dtype, build=build, dtype=str(network_dtype()).removeprefix("torch."))


def detector_backend(backend: str) -> str:
    """`auto` is Face-Adapter's own detector (SCRFD of antelopev2) when its file is present, else mediapipe."""
    if backend != "auto":
        return backend
    if model_present(names.SCRFD):
        log.info("Detect Faces: auto -> insightface-scrfd (%s found, the authors' detector)", names.SCRFD)
        return "insightface-scrfd"
    log.info("Detect Faces: auto -> mediapipe (%s not found; the open detector)", names.SCRFD)
    return "mediapipe"


def get_detector(backend: str, max_faces: int = 8):
    """Detectors are kept in the pack's model cache for reuse between runs."""
    backend = detector_backend(backend)
    if backend == "mediapipe":
        return cached_object(
            resolve_model(names.MEDIAPIPE_LANDMARKER), functools.partial(_mediapipe_detector, max_faces=max_faces)
        )
    if backend == "insightface-scrfd":
        return cached_object(resolve_model(names.SCRFD), functools.partial(_scrfd_detector, max_faces=max_faces))
    raise ValueError(f"unknown face detector {backend!r}; choose one of {BACKENDS}")


CHAINS = ("auto", "one warp", "authors (512, re-detect, 256)")
AUTHORS_CHAIN = CHAINS[2]


def crop_chain(choice: str) -> str:
    """`auto` is the authors' chain when SCRFD (their detector, needed for the re-detection) is present."""
    if choice != "auto":
        return choice
    return AUTHORS_CHAIN if model_present(names.SCRFD) else "one warp"


def chain_input() -> io.Combo.Input:
    return io.Combo.Input(
        "crop_chain",
        options=list(CHAINS),
        default="auto",
        optional=True,
        tooltip="authors: frame -> 512 crop (bilinear, no pre-shrink), the 5 points detected "
        "again on it (SCRFD as infer.py, or mediapipe when it found the faces), that crop warped to 256; one "
        "warp: every crop straight from the frame (anti-aliased). auto: the authors' "
        "chain when SCRFD is present",
    )


def _scrfd_points(crop: np.ndarray) -> np.ndarray | None:
    """Five SCRFD points of the face the authors' key picks on a 512 crop, or None."""
    detector = get_detector("insightface-scrfd")
    boxes, kps = detector._raw_detect(crop)
    if not len(boxes):
        return None
    return kps[face_align.faceadapter_pick_face(boxes)]


def _mediapipe_points(crop: np.ndarray) -> np.ndarray | None:
    """Five mediapipe points of the face the authors' key picks on a 512 crop, or None."""
    found = get_detector("mediapipe").detect(crop)
    if not found:
        return None
    return found[face_align.faceadapter_pick_face(np.stack([f.box for f in found]))].lm5.astype(np.float32)


def redetector(backend: str):
    """The re-detection of the authors' chain runs the detector that found the faces: SCRFD as the authors do,
    or mediapipe on the open path (so the chain's geometry can be had without the restricted SCRFD file)."""
    return _scrfd_points if backend == "insightface-scrfd" else _mediapipe_points


@dataclass
class AuthorsChain:
    forward512: np.ndarray  # (B,2,3) frame -> 512
    canvas: np.ndarray  # (B,2,3) frame -> 256 (the 512 -> 256 re-detected matrix after forward512)
    crops512: np.ndarray  # (B,512,512,3) uint8
    warp256: np.ndarray  # (B,2,3) 512 -> 256, the matrix fitted on the re-detected points


def authors_crop_chain(
    frames: np.ndarray,
    faces: FaceSet,
    crop_ratio: float = 0.81,
    boxes: np.ndarray | None = None,
    redetect=None,
) -> AuthorsChain:
    """Face-Adapter's crop chain over frames (see face.align.authors_chain); `redetect` defaults to the detector
    that found `faces` (redetector)."""
    from ..face.types import compose_affine

    redetect = redetector(faces.backend) if redetect is None else redetect
    boxes = faces.boxes() if boxes is None else boxes
    forward = face_align.faceadapter512_crop(boxes, faces.image_size, crop_ratio).forward
    lm5 = faces.lm5()
    crops, canvas, warps, lost = [], [], [], []
    for i, frame in enumerate(frames):
        crop, warp, found = face_align.authors_chain(frame, forward[i], lm5[i], redetect)
        crops.append(crop)
        warps.append(warp)
        canvas.append(compose_affine(warp, forward[i]))
        if not found:
            lost.append(i)
    if lost:
        log.warning(
            "authors' crop chain: no face found again on the 512 crop of frame(s) %s; their points were "
            "mapped into the crop instead",
            lost[:20],
        )
    return AuthorsChain(forward, np.stack(canvas), np.stack(crops), np.stack(warps))


def chain_256_crops(chain: AuthorsChain, canvas: np.ndarray) -> np.ndarray:
    """256 crops cut from the 512 crops (the authors' second warp) for frame -> 256 matrices ``canvas``.

    The chain's own canvas is cut with the fitted 512 -> 256 matrix itself: going through frame -> 256 and the
    inverse of frame -> 512 moves the bilinear weights by float round-off, which flipped single levels on
    about 1% of the 256 crop's pixels (tests/integration/test_face_adapter_end_to_end.py)."""
    from ..face.types import compose_affine, invert_affines

    if np.array_equal(canvas, chain.canvas):
        warps = chain.warp256
    else:
        warps = [compose_affine(m, inv) for m, inv in zip(canvas, invert_affines(chain.forward512))]
    return np.stack([face_align.plain_warp(c, m, 256) for c, m in zip(chain.crops512, warps)])


class DetectFaces(FaceControlNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FaceControlDetectFaces",
            display_name="Detect Faces",
            category="FaceControl/faces",
            description="Finds one face per frame (478 mediapipe points when available, iBUG-68 and 5 points) "
            "and keeps the same face across a video by tracking its overlap.",
            inputs=[
                io.Image.Input("image", tooltip="a photo or a video as an IMAGE batch"),
                io.Combo.Input(
                    "backend",
                    options=list(BACKENDS),
                    default="mediapipe",
                    tooltip="mediapipe needs no download; insightface-scrfd needs antelopev2's "
                    "scrfd_10g_bnkps.onnx; auto takes SCRFD when that file is present "
                    "(Face-Adapter's detector), else mediapipe. The report names what ran.",
                ),
                *selection_inputs(),
            ],
            outputs=[FACES.Output(display_name="faces"), io.String.Output(display_name="report")],
        )

    @classmethod
    def fingerprint_inputs(cls, **inputs) -> str:
        return files_stamp([names.SCRFD]) if inputs.get("backend") == "auto" else ""

    @classmethod
    def execute(cls, image, backend, **selection) -> io.NodeOutput:
        frames = image_to_uint8(image, "image")
        backend = detector_backend(backend)
        detector = get_detector(backend)
        choice = FaceChoice.from_inputs(**selection)
        face_set = detect_face_set(
            frames, detector, choice.selection, track=choice.track, on_frame=progress(len(frames)), backend=backend
        )
        return choice.finish(face_set, "image", "Detect Faces")


class AlignFaces(FaceControlNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FaceControlAlignFaces",
            display_name="Align and Crop Faces",
            category="FaceControl/faces",
            description="Aligned face crops with their transforms: FFHQ quad (PIE, DVA; optional temporal smoothing "
            "for video), ArcFace-template 256, or Face-Adapter's 512 crop. \"ffhq (DVA authors' chain)\" reproduces DVA's "
            "preprocessing exactly: reflect-mode smoothing, PIL warp to 1024, JPEG q75, resize.",
            inputs=[
                io.Image.Input("image"),
                FACES.Input("faces"),
                io.Combo.Input("convention", options=list(CONVENTIONS), default="ffhq"),
                io.Int.Input(
                    "size",
                    default=256,
                    min=64,
                    max=2048,
                    step=8,
                    tooltip="crop size for ffhq (arcface256 is 256, faceadapter512 is 512)",
                ),
                io.Boolean.Input(
                    "smooth", default=True, tooltip="ffhq on video: Gaussian smoothing of the crop over frames (DVA)"
                ),
                io.Float.Input("sigma_center", default=1.0, min=0.0, max=20.0, step=0.1),
                io.Float.Input("sigma_size", default=3.0, min=0.0, max=20.0, step=0.1),
                io.Float.Input(
                    "crop_ratio",
                    default=0.81,
                    min=0.0,
                    max=3.0,
                    step=0.01,
                    tooltip="faceadapter512: loose-box half-side over box width",
                ),
                io.Combo.Input("border", options=["constant", "reflect", "replicate"], default="constant"),
                chain_input(),
            ],
            outputs=[io.Image.Output(display_name="crops"), FACE_CROP.Output(display_name="face_crop")],
        )

    @classmethod
    def fingerprint_inputs(cls, **inputs) -> str:
        return files_stamp([names.SCRFD]) if inputs.get("crop_chain", "auto") == "auto" else ""

    @classmethod
    def execute(
        cls,
        image,
        faces: FaceSet,
        convention,
        size,
        smooth,
        sigma_center,
        sigma_size,
        crop_ratio,
        border,
        crop_chain="auto",
    ) -> io.NodeOutput:
        frames = image_to_uint8(image, "image")
        check_same_frames(frames, faces, "image", "faces")
        faces = _broadcast_faces(faces, len(frames))
        if convention in ("faceadapter512", "arcface256") and crop_chain_for(crop_chain, border) == AUTHORS_CHAIN:
            return _authors_chain_crops(frames, faces, convention, smooth, sigma_center, sigma_size, crop_ratio)
        crop = make_face_crop(faces, convention, size, smooth, sigma_center, sigma_size, crop_ratio)
        if convention == AUTHORS_FFHQ:
            return io.NodeOutput(uint8_to_image(face_align.authors_ffhq_crops(frames, crop)), crop)
        tick = progress(len(frames))
        crops = []
        for i, frame in enumerate(frames):
            crops.append(face_align.warp_one(frame, crop.forward[i], crop.crop_size, border))
            tick(i)
        return io.NodeOutput(uint8_to_image(np.stack(crops)), crop)


def crop_chain_for(choice: str, border: str) -> str:
    chain = crop_chain(choice)
    if chain == AUTHORS_CHAIN and border != "constant":
        if choice != "auto":
            raise ValueError("the authors' crop chain pads with black (border 'constant')")
        return "one warp"
    return chain


def _authors_chain_crops(
    frames, faces: FaceSet, convention: str, smooth: bool, sigma_center: float, sigma_size: float, crop_ratio: float
) -> io.NodeOutput:
    boxes = faces.boxes()
    if smooth:
        boxes = face_align.smooth_boxes(boxes, sigma_center, sigma_size)
    chain = authors_crop_chain(frames, faces, crop_ratio, boxes)
    log.info("Align and Crop Faces: %s, the authors' crop chain", convention)
    if convention == "faceadapter512":
        return io.NodeOutput(
            uint8_to_image(chain.crops512),
            face_align.make_crop(chain.forward512, 512, faces.image_size, "faceadapter512"),
        )
    crops = chain_256_crops(chain, chain.canvas)
    return io.NodeOutput(uint8_to_image(crops), face_align.make_crop(chain.canvas, 256, faces.image_size, "arcface256"))


def _broadcast_faces(faces: FaceSet, n: int) -> FaceSet:
    if len(faces) == n:
        return faces
    return FaceSet(faces.faces * n, faces.image_size, faces.backend, faces.blendshape_names)


def make_face_crop(
    faces: FaceSet, convention: str, size: int, smooth: bool, sigma_center: float, sigma_size: float, crop_ratio: float
) -> FaceCropData:
    if convention in ("ffhq", AUTHORS_FFHQ):
        mode = "reflect" if convention == AUTHORS_FFHQ else "nearest"  # scipy's default, as the authors smooth
        return face_align.ffhq_crop(
            faces.lm68(), faces.image_size, size, smooth and len(faces) > 1, sigma_center, sigma_size, mode
        )
    if convention == "arcface256":
        return face_align.arcface_crop(faces.lm5(), faces.image_size, 256)
    if convention == "faceadapter512":
        boxes = faces.boxes()
        if smooth:
            boxes = face_align.smooth_boxes(boxes, sigma_center, sigma_size)
        return face_align.faceadapter512_crop(boxes, faces.image_size, crop_ratio)
    raise ValueError(f"unknown crop convention {convention!r}; choose one of {CONVENTIONS}")


class PasteBack(FaceControlNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FaceControlPasteBack",
            display_name="Paste Faces Back",
            category="FaceControl/faces",
            description="Inverse-warps edited crops into the original frames through a feathered mask "
            "(the given crop-space MASK, or the whole crop area).",
            inputs=[
                io.Image.Input("image", tooltip="the original frames"),
                io.Image.Input("crops", tooltip="edited crops, one per frame or one for all"),
                FACE_CROP.Input("face_crop"),
                io.Int.Input("feather", default=16, min=0, max=256, tooltip="edge softness in crop pixels"),
                io.Mask.Input("mask", optional=True, tooltip="where to paste, in crop space; default the crop area"),
            ],
            outputs=[io.Image.Output(display_name="image"), io.Mask.Output(display_name="mask")],
        )

    @classmethod
    def execute(cls, image, crops, face_crop: FaceCropData, feather, mask=None) -> io.NodeOutput:
        frames = image.detach().cpu().float().numpy()
        image_to_uint8(image, "image")  # the same checks as every face node
        crop_imgs = image_to_uint8(crops, "crops").astype(np.float32) / 255.0
        n = len(frames)
        check_batch(n, len(crop_imgs), "image", "crops")
        check_batch(n, len(face_crop), "image", "face_crop")
        if tuple(face_crop.image_size) != tuple(frames.shape[1:3]):
            raise ValueError(
                f"'face_crop' was made on {face_crop.image_size[1]}x{face_crop.image_size[0]} frames but "
                f"'image' is {frames.shape[2]}x{frames.shape[1]}"
            )
        size = face_crop.crop_size
        if crop_imgs.shape[1:3] != (size, size):
            raise ValueError(
                f"'crops' are {crop_imgs.shape[2]}x{crop_imgs.shape[1]} but 'face_crop' makes {size}x{size} crops"
            )
        if mask is None:
            masks = crop_area_mask(size)[None]
        else:
            masks = mask_batch(mask, "mask")
            check_batch(n, len(masks), "image", "mask")
            if masks.shape[1:] != (size, size):
                raise ValueError(f"'mask' is {masks.shape[2]}x{masks.shape[1]} but the crops are {size}x{size}")
        out, used = paste_back(frames, crop_imgs, face_crop, masks, feather)
        return io.NodeOutput(torch.from_numpy(out).clamp(0, 1), torch.from_numpy(used))


class PreviewFaces(FaceControlNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FaceControlPreviewFaces",
            display_name="Preview Faces",
            category="FaceControl/faces",
            description="Draws each frame's box (green), 68 points (red), 5 points (blue) and optionally the 478 mesh.",
            inputs=[io.Image.Input("image"), FACES.Input("faces"), io.Boolean.Input("show_478", default=False)],
            outputs=[io.Image.Output(display_name="image")],
        )

    @classmethod
    def execute(cls, image, faces: FaceSet, show_478) -> io.NodeOutput:
        frames = image_to_uint8(image, "image")
        check_batch(len(frames), len(faces), "image", "faces")
        faces = _broadcast_faces(faces, len(frames))
        out = []
        for i, frame in enumerate(frames):
            face = faces.faces[i]
            drawn = draw_no_face(frame) if face is None else draw_face(frame, face, show_478)
            if i in faces.filled_from:
                drawn = draw_no_face(drawn, f"face reused from frame {faces.filled_from[i]}")
            out.append(drawn)
        return io.NodeOutput(uint8_to_image(np.stack(out)))


NODES = [DetectFaces, AlignFaces, PasteBack, PreviewFaces]
