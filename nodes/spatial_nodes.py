"""Face-Adapter's Spatial Condition Generator as nodes: 3DMM fit, recombination, landmark projection,
adapting-area mask and spatial control. All work on batches (a video is one frame per item)."""

from __future__ import annotations

import logging

import numpy as np
import torch
from comfy_api.latest import io

from .. import model_names as names
from ..face import adapting_mask
from ..face import face3dmm as f3
from ..face.align import warp_one
from ..face.image import image_to_signed, uint8_to_signed
from ..face.types import FaceCrop as FaceCropData
from ..face.types import FaceSet, apply_affine
from ..model_files import ModelFileNotFound
from .checks import FaceControlNode
from .common import (
    cached_object,
    cached_patcher,
    check_batch,
    check_image,
    check_same_frames,
    image_to_uint8,
    images_with_mask,
    loaded_model,
    mask_batch,
    progress,
    resolve_model,
)
from .face_nodes import (
    AUTHORS_CHAIN,
    AuthorsChain,
    authors_crop_chain,
    chain_256_crops,
    chain_input,
    crop_chain,
    files_stamp,
    in_network_dtype,
    model_present,
)
from .sockets import FACE_3DMM, FACE_CROP, FACE_LANDMARKS, FACES

log = logging.getLogger("facecontrol")

REGRESSOR_BATCH = 16


def _check_faces_match(frames: np.ndarray, faces: FaceSet, image_name: str, faces_name: str) -> None:
    check_same_frames(frames, faces, image_name, faces_name)
    if len(faces) == 1 and len(frames) > 1:
        raise ValueError(
            f"'{faces_name}' holds one face for {len(frames)} frames of '{image_name}': detect faces on the same frames"
        )


class Fit3DMM(FaceControlNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FaceControlFit3DMM",
            display_name="Fit 3DMM",
            category="FaceControl/3dmm",
            description="Per-frame 3DMM coefficients of the detected face. ict_facekit (default, MIT, no download) fits "
            "the open ICT-FaceKit model to the 68 landmarks, gaze from mediapipe's irises. bfm_d3dfr is "
            "Face-Adapter's own: the d3dfr regressor on the 256 ArcFace crop and the BFM (needs "
            "d3dfr_res50_nofc.pth and BFM_model_front.mat).",
            inputs=[
                io.Image.Input("images", tooltip="the frames the faces were detected on"),
                FACES.Input("faces"),
                io.Combo.Input(
                    "backend",
                    options=list(FIT_BACKENDS),
                    default="auto",
                    tooltip="auto: bfm_d3dfr (the authors') when d3dfr_res50_nofc.pth and "
                    "BFM_model_front.mat are present, else ict_facekit. backend_used names what ran.",
                ),
                io.Combo.Input(
                    "identity",
                    options=["per frame", "shared over frames"],
                    default="per frame",
                    tooltip="a video of one person: one identity for all frames",
                ),
                io.Float.Input(
                    "smooth_sigma",
                    default=0.0,
                    min=0.0,
                    max=20.0,
                    step=0.1,
                    tooltip="video: Gaussian smoothing of pose, expression and gaze over frames (0 = off)",
                ),
                chain_input(),
            ],
            outputs=[FACE_3DMM.Output(display_name="face_3dmm"), io.String.Output(display_name="backend_used")],
        )

    @classmethod
    def fingerprint_inputs(cls, **inputs) -> str:
        return files_stamp(BFM_FILES + (names.SCRFD,))

    @classmethod
    def execute(cls, images, faces: FaceSet, backend, identity, smooth_sigma, crop_chain="auto") -> io.NodeOutput:
        frames = image_to_uint8(images, "images")
        _check_faces_match(frames, faces, "images", "faces")
        shared = identity == "shared over frames"
        backend = fit_backend(backend)
        chain = authors_crop_chain(frames, faces) if _crop_chain(crop_chain) == AUTHORS_CHAIN else None
        if backend == "ict_facekit":
            fit = fit_ict_backend(faces, shared, smooth_sigma, None if chain is None else chain.canvas)
        elif backend == "bfm_d3dfr":
            fit = fit_bfm_backend(frames, faces, shared, smooth_sigma, chain)
        else:
            raise ValueError(f"unknown 3DMM backend {backend!r}; choose one of {f3.BACKENDS}")
        log.info("Fit 3DMM: %s", fit.describe())
        return io.NodeOutput(fit, backend)


FIT_BACKENDS = ("auto",) + f3.BACKENDS
BFM_FILES = (names.FA_D3DFR, names.FA_BFM)


def fit_backend(backend: str) -> str:
    """`auto` is Face-Adapter's own d3dfr + BFM when both files are present, else the open ICT-FaceKit fit."""
    if backend != "auto":
        return backend
    missing = [name for name in BFM_FILES if not model_present(name)]
    if not missing:
        log.info("Fit 3DMM: auto -> bfm_d3dfr (the authors' d3dfr regressor and BFM are present)")
        return "bfm_d3dfr"
    log.info("Fit 3DMM: auto -> ict_facekit (%s not found; the open 3DMM)", ", ".join(missing))
    return "ict_facekit"


def _crop_chain(choice: str) -> str:
    chain = crop_chain(choice)
    log.info("Fit 3DMM: crop chain %s", chain)
    return chain


def fit_ict_backend(faces: FaceSet, shared: bool, smooth_sigma: float, canvas: np.ndarray | None = None) -> f3.Face3DMM:
    from ..face.ict_model import load_ict_model

    model = cached_object(resolve_model(names.ICT_LANDMARK_MODEL), load_ict_model)
    iterations = 10
    return f3.fit_ict(
        faces,
        model,
        shared_identity=shared,
        smooth_sigma=smooth_sigma,
        iterations=iterations,
        on_iteration=progress(iterations),
        canvas=canvas,
    )


def fit_bfm_backend(
    frames: np.ndarray, faces: FaceSet, shared: bool, smooth_sigma: float, chain: AuthorsChain | None = None
) -> f3.Face3DMM:
    from ..face.bfm import BFMProjector
    from ..models.d3dfr import load_d3dfr

    regressor = loaded_model(cached_patcher(resolve_model(names.FA_D3DFR), in_network_dtype(load_d3dfr)))
    projector = cached_object(resolve_model(names.FA_BFM), BFMProjector.face_adapter)
    # smoothed before the crops are cut, as on ICT, so the crop jitter is not drawn back into the landmarks
    canvas = f3.smooth_canvas(f3.arcface_canvas(faces) if chain is None else chain.canvas, smooth_sigma)
    all_crops = None if chain is None else chain_256_crops(chain, canvas)
    device = next(regressor.parameters()).device
    dtype = next(regressor.parameters()).dtype
    tick = progress(len(frames))
    outputs = []
    for start in range(0, len(frames), REGRESSOR_BATCH):
        idx = range(start, min(start + REGRESSOR_BATCH, len(frames)))
        if all_crops is None:
            crops = np.stack([warp_one(frames[i], canvas[i], f3.CANVAS_SIZE) for i in idx])
        else:
            crops = all_crops[idx.start : idx.stop]
        x = uint8_to_signed(crops)  # [-1,1] RGB
        with torch.no_grad():
            outputs.append(regressor(x.to(device, dtype)).float().cpu())
        tick(idx[-1])
    return f3.bfm_from_regressor(torch.cat(outputs), canvas, tuple(faces.image_size), projector, smooth_sigma, shared)


class Recombine3DMM(FaceControlNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FaceControlRecombine3DMM",
            display_name="Recombine 3DMM",
            category="FaceControl/3dmm",
            description="The source's face shape (identity) with the driver's motion. The default is Face-Adapter's: "
            "everything from the driver except the identity-shape coefficients. 'pose only' keeps the "
            "source's expression and gaze; 'expression and gaze only' keeps the source's head pose.",
            inputs=[
                FACE_3DMM.Input("source", tooltip="whose face shape to keep (one frame, or one per driver frame)"),
                FACE_3DMM.Input("driver", tooltip="whose motion to take (a photo or a video)"),
                io.Combo.Input(
                    "take_from_driver",
                    options=list(f3.RECOMBINE_MODES),
                    default="expression, pose and gaze (Face-Adapter)",
                ),
            ],
            outputs=[FACE_3DMM.Output(display_name="face_3dmm")],
        )

    @classmethod
    def execute(cls, source: f3.Face3DMM, driver: f3.Face3DMM, take_from_driver) -> io.NodeOutput:
        return io.NodeOutput(f3.recombine(source, driver, take_from_driver))


class ProjectLandmarks(FaceControlNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FaceControlProjectLandmarks",
            display_name="Project 3DMM Landmarks",
            category="FaceControl/3dmm",
            description="Face-Adapter's 70-point control image: the 68 projected landmarks and 2 gaze points as "
            "rainbow dots (radius 2) on a black 256 canvas, warped into the crop with the pose frame's "
            "512->256 transform. Also outputs the 70 points in crop pixels.",
            inputs=[
                FACE_3DMM.Input("face_3dmm"),
                FACE_CROP.Input("crop", tooltip="the crop to draw into: the driver's faceadapter512 crop"),
            ],
            outputs=[io.Image.Output(display_name="landmark_image"), FACE_LANDMARKS.Output(display_name="landmarks")],
        )

    @classmethod
    def execute(cls, face_3dmm: f3.Face3DMM, crop: FaceCropData) -> io.NodeOutput:
        if tuple(crop.image_size) != tuple(face_3dmm.image_size):
            raise ValueError(
                f"'crop' was made on {crop.image_size[1]}x{crop.image_size[0]} frames but the pose in "
                f"'face_3dmm' comes from {face_3dmm.image_size[1]}x{face_3dmm.image_size[0]} frames: "
                "use the crop of the frames the pose comes from (the driver's)"
            )
        check_batch(len(face_3dmm), len(crop), "face_3dmm", "crop")
        tick = progress(1)
        images, points = f3.project_into_crop(face_3dmm, crop.forward, crop.crop_size, crop.convention)
        tick(0)
        return io.NodeOutput(torch.from_numpy(images).float() / 255.0, points)


class AdaptingMask(FaceControlNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FaceControlAdaptingMask",
            display_name="Adapting-Area Mask",
            category="FaceControl/3dmm",
            description="Where the generator may change the crop. reenactment: Face-Adapter's Adapting Area Predictor "
            "(net_seg_res18.pth). swap: BiSeNet face parsing of the target (79999_iter.pth) with "
            "Face-Adapter's class sets, dilations 65 and 5, and glasses/earrings/necklace/hat removed. "
            "geometric: no network, the union of the base's and the driver's face regions from "
            "landmarks, dilated. auto uses the network when its file is present, else geometric.",
            inputs=[
                io.Combo.Input("mode", options=["reenactment", "swap"], default="reenactment"),
                io.Combo.Input("method", options=["auto", "network", "geometric"], default="auto"),
                io.Image.Input("base_image", tooltip="512 crops: the source's (reenactment) or the target's (swap)"),
                io.Image.Input("landmark_image", tooltip="from Project 3DMM Landmarks"),
                FACE_LANDMARKS.Input("landmarks", tooltip="from Project 3DMM Landmarks"),
                FACES.Input("base_faces", optional=True, tooltip="geometric: the faces the base crops were made from"),
                FACE_CROP.Input("base_crop", optional=True, tooltip="geometric: the base crops' FACE_CROP"),
                io.Int.Input(
                    "dilation",
                    default=33,
                    min=1,
                    max=255,
                    step=2,
                    optional=True,
                    tooltip="geometric: dilation in crop pixels",
                ),
                io.Combo.Input(
                    "bisenet_input",
                    options=["authors ([-1,1])", "imagenet"],
                    default="authors ([-1,1])",
                    optional=True,
                    tooltip="swap: Face-Adapter feeds BiSeNet [-1,1] pixels although it was "
                    "trained on ImageNet-normalised ones; 'imagenet' corrects that",
                ),
                io.Mask.Input(
                    "swap_mask",
                    optional=True,
                    tooltip="swap: your own adapting-area MASK (512, crop space); used as given",
                ),
                io.Image.Input(
                    "swap_labels",
                    optional=True,
                    tooltip="swap: a precomputed parsing-label image in the authors' coding (their "
                    "tgt/mask/<name>.png, label = round(pixel*20/255)), warped to the 512 crop; "
                    "their class sets and dilations make the mask",
                ),
            ],
            outputs=[io.Mask.Output(display_name="mask"), io.String.Output(display_name="method_used")],
        )

    @classmethod
    def fingerprint_inputs(cls, **inputs) -> str:
        return files_stamp([names.FA_SEG_UNET, names.FA_BISENET])

    @classmethod
    def execute(
        cls,
        mode,
        method,
        base_image,
        landmark_image,
        landmarks: f3.CropLandmarks,
        base_faces=None,
        base_crop=None,
        dilation=33,
        bisenet_input="authors ([-1,1])",
        swap_mask=None,
        swap_labels=None,
    ) -> io.NodeOutput:
        check_image(base_image, "base_image")
        check_image(landmark_image, "landmark_image")
        n = max(len(base_image), len(landmark_image))
        check_batch(n, len(base_image), "frames", "base_image")
        check_batch(n, len(landmark_image), "frames", "landmark_image")
        check_batch(n, len(landmarks), "frames", "landmarks")
        if base_image.shape[1:3] != landmark_image.shape[1:3]:
            raise ValueError(
                f"'base_image' is {base_image.shape[2]}x{base_image.shape[1]} but 'landmark_image' is "
                f"{landmark_image.shape[2]}x{landmark_image.shape[1]}"
            )
        given = _given_swap_mask(mode, swap_mask, swap_labels, n, tuple(base_image.shape[1:3]))
        if given is not None:
            mask, label = given
            log.info("Adapting-Area Mask: %s, %.1f%% of the crop", label, 100 * float(mask.mean()))
            return io.NodeOutput(mask, label)
        used = _choose_mask_method(mode, method)
        if used == "geometric":
            mask = _geometric(base_image, landmarks, base_faces, base_crop, dilation, n)
        elif mode == "reenactment":
            mask = _seg_unet_mask(_repeat(base_image, n), _repeat(landmark_image, n))
        else:
            mask = _bisenet_mask(_repeat(base_image, n), bisenet_input)
        label = _mask_label(used, mode)
        log.info("Adapting-Area Mask: %s, %.1f%% of the crop", label, 100 * float(mask.mean()))
        return io.NodeOutput(mask, label)


def _given_swap_mask(mode: str, swap_mask, swap_labels, n: int, size: tuple[int, int]):
    """A user MASK or a precomputed label image for swapping, as (mask, label), or None when neither is given."""
    if swap_mask is None and swap_labels is None:
        return None
    if mode != "swap":
        raise ValueError("'swap_mask' and 'swap_labels' are for mode 'swap'; reenactment predicts its mask")
    if swap_mask is not None:
        masks = mask_batch(swap_mask, "swap_mask")
        source, label = torch.from_numpy(masks).float(), "user mask (swap; 'swap_mask' as given)"
    else:
        check_image(swap_labels, "swap_labels")
        source = adapting_mask.swap_mask_from_label_image(swap_labels[..., 0].cpu())
        label = "precomputed labels (swap; the authors' tgt/mask coding and class sets)"
    if tuple(source.shape[1:3]) != size:
        raise ValueError(
            f"the given swap mask is {source.shape[2]}x{source.shape[1]} but 'base_image' is "
            f"{size[1]}x{size[0]}: give it in the 512 crop"
        )
    check_batch(n, len(source), "frames", "swap mask")
    return _repeat(source, n).contiguous(), label


def _mask_label(used: str, mode: str) -> str:
    if used == "geometric":
        return f"geometric ({mode}; open fallback, landmark face regions)"
    network = "seg UNet, net_seg_res18.pth" if mode == "reenactment" else "BiSeNet, 79999_iter.pth"
    return f"network ({mode}; {network}, the authors')"


def _repeat(images: torch.Tensor, n: int) -> torch.Tensor:
    return images.expand(n, *images.shape[1:]) if len(images) == 1 and n > 1 else images


def _network_file(mode: str) -> str:
    return names.FA_SEG_UNET if mode == "reenactment" else names.FA_BISENET


def _choose_mask_method(mode: str, method: str) -> str:
    if method == "geometric":
        return "geometric"
    try:
        resolve_model(_network_file(mode))
    except ModelFileNotFound:
        if method == "network":
            raise
        log.warning(
            "Adapting-Area Mask: %s not found, using the geometric fallback (landmark face regions)",
            _network_file(mode),
        )
        return "geometric"
    return "network"


def _geometric(base_image, landmarks: f3.CropLandmarks, base_faces, base_crop, dilation: int, n: int) -> torch.Tensor:
    if base_faces is None or base_crop is None:
        raise ValueError(
            "the geometric mask needs 'base_faces' and 'base_crop' (the faces and FACE_CROP the base "
            "crops were made from) to know where the base face is"
        )
    check_batch(n, len(base_faces), "frames", "base_faces")
    check_batch(n, len(base_crop), "frames", "base_crop")
    size = base_image.shape[1]
    if base_crop.crop_size != size:
        raise ValueError(f"'base_crop' makes {base_crop.crop_size} crops but 'base_image' is {size} pixels")
    base_lm = np.stack(
        [
            apply_affine(base_crop.forward[i % len(base_crop)], base_faces.lm68("base_faces")[i % len(base_faces)])
            for i in range(n)
        ]
    )
    driver_lm = np.stack([landmarks.points[i % len(landmarks)][:68] for i in range(n)])
    return torch.from_numpy(adapting_mask.geometric_mask([base_lm, driver_lm], size, dilation))


MASK_BATCH = 8


def _seg_unet_mask(base_image: torch.Tensor, landmark_image: torch.Tensor) -> torch.Tensor:
    from ..models.seg_unet import load_seg_unet

    net = loaded_model(cached_patcher(resolve_model(names.FA_SEG_UNET), in_network_dtype(load_seg_unet)))
    param = next(net.parameters())
    tick = progress(len(base_image))
    masks = []
    for s in _batches(len(base_image)):
        img = image_to_signed(base_image[s], param.device).to(param.dtype)
        pts = image_to_signed(landmark_image[s], param.device).to(param.dtype)
        with torch.no_grad():
            masks.append(net.predict_mask(img, pts)[:, 0].float().cpu())
        tick(s.stop - 1)
    return torch.cat(masks)


def _bisenet_mask(base_image: torch.Tensor, bisenet_input: str) -> torch.Tensor:
    from ..models.bisenet import load_bisenet

    net = loaded_model(cached_patcher(resolve_model(names.FA_BISENET), in_network_dtype(load_bisenet)))
    param = next(net.parameters())
    preprocess = "none" if bisenet_input.startswith("authors") else "imagenet_signed"
    size = base_image.shape[1]
    tick = progress(len(base_image))
    masks = []
    for s in _batches(len(base_image)):
        with torch.no_grad():
            x = image_to_signed(base_image[s], param.device).to(param.dtype)
            labels = net.parse(x, preprocess=preprocess, size=size).labels
        masks.append(adapting_mask.swap_mask_from_parsing(labels[:, 0]).float().cpu())
        tick(s.stop - 1)
    return torch.cat(masks)


def _batches(n: int):
    """Frames in batches of MASK_BATCH (a video runs batched, not one frame a call)."""
    for start in range(0, n, MASK_BATCH):
        yield slice(start, min(n, start + MASK_BATCH))


class SpatialControl(FaceControlNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FaceControlSpatialControl",
            display_name="Spatial Control Image",
            category="FaceControl/3dmm",
            description="landmarks x mask + base x (1 - mask): the Face-Adapter ControlNet's spatial condition "
            "(base = the source crop for reenactment, the target crop for swapping).",
            inputs=[
                io.Image.Input("landmark_image"),
                io.Image.Input("base_image"),
                io.Mask.Input("mask"),
            ],
            outputs=[io.Image.Output(display_name="control_image")],
        )

    @classmethod
    def execute(cls, landmark_image, base_image, mask) -> io.NodeOutput:
        images, masks = images_with_mask({"landmark_image": landmark_image, "base_image": base_image}, mask)
        control = adapting_mask.spatial_control(images["landmark_image"], images["base_image"], masks)
        return io.NodeOutput(control.clamp(0, 1))


NODES = [Fit3DMM, Recombine3DMM, ProjectLandmarks, AdaptingMask, SpatialControl]
