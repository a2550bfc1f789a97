"""PIE nodes: load StyleGAN2 and RigNet, embed a portrait crop (PIE energies, W then W+), edit pose /
expression / illumination (RigNet or direct mode), decode. Paste-back is the pack's Paste Faces Back node."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import folder_paths
import numpy as np
import torch
import torch.nn.functional as F
from comfy_api.latest import io

from .. import model_names as names
from ..face.image import image_to_signed, signed_to_image
from ..models.checkpoint import load_state_strict, read_state, strip_prefix
from ..models.dva_face_encoder import load_landmark_net
from ..models.precision import COMPUTE_DTYPES as PRECISIONS
from ..models.precision import with_precision
from ..models.vgg_perceptual import load_vgg_perceptual
from ..pipelines import pie
from .checks import FaceControlNode
from .common import (
    Progress,
    cached_patcher,
    check_image,
    check_interrupted,
    folder_file,
    load_patchers,
    loaded_model,
    resolve_model,
)
from .sockets import PIE_EDIT_SETTINGS, PIE_EMBED_SETTINGS, PIE_LATENT, RIGNET, STYLEGAN

log = logging.getLogger("facecontrol")

FACE_MODELS = ("ict_facekit", "bfm_deep3dfacerecon")
LIGHT_LIMIT = 0.4  # light offsets beyond this make negative irradiance on a neutral light (0.8 ambient)
REFERENCE_GROUPS = {
    "none": (),
    "expression": ("expression",),
    "illumination": ("illumination",),
    "expression+illumination": ("expression", "illumination"),
    "pose+expression+illumination": ("pose", "expression", "illumination"),
}


@dataclass
class StyleGANHandle:
    patcher: object
    info: dict


@dataclass
class RigNetHandle:
    patcher: object
    path: str


@dataclass
class PIELatent:
    """Embedded portraits (the ComfyUI type PIE_LATENT): W+ per frame, the 3DMM parameters regressed from the
    input crops, the crop size to decode back to, and the embedding log."""

    w_plus: torch.Tensor  # (B,num_ws,w_dim), CPU
    theta: dict[str, torch.Tensor]  # CPU
    crop_size: int
    generator_key: str
    history: list[dict]
    face_model: str = "ict_facekit"

    def __len__(self) -> int:
        return self.w_plus.shape[0]


# ----------------------------------------------------------------------------- model builders


def build_stylegan2(path: Path) -> torch.nn.Module:
    """A StyleGAN2 file, or the pack's 3DMM face generator (``.safetensors``, scripts/make_face_generator.py)."""
    from ..models.stylegan2 import load_stylegan2

    return load_stylegan2(path)


def build_rignet(path: Path) -> torch.nn.Module:
    from ..models.rignet import load_rignet

    return load_rignet(path)


def build_formation(path: Path) -> pie.ICTFaceFormation:
    """ICT-FaceKit dense mesh + the landmark network (``path``)."""
    from ..face.ict_model import load_ict_model

    return pie.ICTFaceFormation(load_ict_model(resolve_model(names.ICT_FACE_MODEL)), load_landmark_net(path))


def build_bfm_formation(path: Path) -> torch.nn.Module:
    """Deep3DFaceRecon's regressor (``path``, epoch_20.pth) + BFM_model_front.mat + the landmark network;
    similarity_Lm3D_all.mat for the alignment when it is there."""
    from ..face.bfm import BFMProjector, load_standard_landmarks
    from ..models.d3dfr import load_deep3dfacerecon
    from ..pipelines.pie.bfm import BFMFaceFormation

    try:
        standard = load_standard_landmarks(resolve_model(names.PIE_STANDARD_LANDMARKS))
    except FileNotFoundError:
        standard = None
    landmark_net = load_landmark_net(resolve_model(names.DVA_LNDNET))
    return BFMFaceFormation(
        BFMProjector(resolve_model(names.PIE_BFM)), load_deep3dfacerecon(path), landmark_net, standard
    )


def formation_patcher(face_model: str):
    """The 3DMM image formation of ``face_model`` (one of FACE_MODELS) in a ModelPatcher."""
    if face_model == "ict_facekit":
        return cached_patcher(resolve_model(names.DVA_LNDNET), build_formation)
    if face_model == "bfm_deep3dfacerecon":
        return cached_patcher(resolve_model(names.PIE_D3DFR), build_bfm_formation)
    raise ValueError(f"'face_model' must be one of {FACE_MODELS}, got {face_model!r}")


def build_recognition(path: Path) -> torch.nn.Module:
    from ..models.dva_face_encoder import IdentityNet

    net = IdentityNet()
    load_state_strict(net.backbone, strip_prefix(read_state(path)), str(path))
    return net


def build_vgg_face(path: Path) -> torch.nn.Module:
    from ..models.vgg_face import load_vgg_face

    return load_vgg_face(path)


def recognition_patcher(name: str):
    """The recognition network Psi ``name`` (one of pie.RECOGNITION_NETS), resolved from the model folders."""
    if name == "ir_se50":
        return cached_patcher(resolve_model(names.DVA_IDNET), build_recognition)
    if name == "vgg_face":
        return cached_patcher(resolve_model(names.PIE_VGG_FACE), build_vgg_face)
    raise ValueError(f"'recognition_net' must be one of {pie.RECOGNITION_NETS}, got {name!r}")


def build_perceptual(path: Path) -> torch.nn.Module:
    return load_vgg_perceptual(path)


def _autograd_mode():
    """ComfyUI runs nodes under torch.inference_mode(); PIE optimises latents, so it needs autograd back.
    Models are also built and moved inside this mode: inference tensors cannot be saved for backward."""
    from contextlib import ExitStack

    stack = ExitStack()
    stack.enter_context(torch.inference_mode(False))
    stack.enter_context(torch.enable_grad())
    return stack


def pie_models(
    stylegan: StyleGANHandle,
    recognition: bool,
    perceptual: bool,
    face_model: str = "ict_facekit",
    recognition_net: str = "ir_se50",
) -> pie.PIEModels:
    """Bring every network the energies need onto the compute device through ComfyUI's memory manager."""
    patchers = [stylegan.patcher, formation_patcher(face_model)]
    if recognition:
        patchers.append(recognition_patcher(recognition_net))
    if perceptual:
        patchers.append(cached_patcher(resolve_model(names.PIE_VGG16), build_perceptual))
    load_patchers(patchers)
    modules = [p.model for p in patchers]
    generator, formation = modules[0], modules[1]
    rest = modules[2:]
    recognition_net = rest.pop(0) if recognition else None
    perceptual_net = rest.pop(0) if perceptual else None
    precision = stylegan.info.get("precision", "fp32")
    # The generator is cached and shared: the options of the Load StyleGAN2 node that feeds this run apply.
    generator.configure(
        gradient_checkpointing=stylegan.info.get("gradient_checkpointing", False), compute_dtype=precision
    )
    return pie.PIEModels(
        generator, formation, with_precision(recognition_net, precision), with_precision(perceptual_net, precision)
    )


def _device(models: pie.PIEModels) -> torch.device:
    return models.generator.device


def _to_generator_input(image: torch.Tensor, input_name: str, device: torch.device) -> torch.Tensor:
    """ComfyUI IMAGE (B,H,W,3) [0,1] square crops -> (B,3,H,W) [-1,1]."""
    check_image(image, input_name)
    if image.shape[1] != image.shape[2]:
        raise ValueError(
            f"'{input_name}' must be square face crops (Align and Crop Faces, ffhq); got "
            f"{image.shape[2]}x{image.shape[1]}"
        )
    return image_to_signed(image, device)


def _to_comfy_image(images: torch.Tensor, size: int | None = None) -> torch.Tensor:
    if size and images.shape[-1] != size:
        images = F.interpolate(images, size=(size, size), mode="bicubic", align_corners=False)
    return signed_to_image(images)


class _Progress:
    """Progress bar, cancel point and a JPEG preview of the current generated face every ``preview_every`` steps."""

    def __init__(self, preview_every: int) -> None:
        self.bar: Progress | None = None
        self.preview_every = preview_every

    def __call__(self, step: int, total: int, record: dict, preview) -> None:
        check_interrupted()
        if self.bar is None:
            self.bar = Progress(total)
        shown = None
        if self.preview_every and (step % self.preview_every == 0 or step + 1 == total):
            from PIL import Image

            first = _to_comfy_image(preview()[:1])[0].numpy()
            shown = ("JPEG", Image.fromarray((first * 255 + 0.5).astype(np.uint8)), 512)
        self.bar.update(step + 1, total, shown)


def _check_generator(latent: PIELatent, stylegan: StyleGANHandle) -> None:
    key = stylegan.info.get("path", "")
    if latent.generator_key != key:
        raise ValueError(
            f"'pie_latent' was embedded with {Path(latent.generator_key).name} but 'stylegan' is "
            f"{Path(key).name}; use the same generator for embedding, editing and decoding"
        )


# ----------------------------------------------------------------------------- nodes


class LoadStyleGAN2(FaceControlNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FaceControlLoadStyleGAN2",
            display_name="Load StyleGAN2",
            category="FaceControl/PIE",
            description="A StyleGAN2 generator from models/stylegan2: rosinality .pt or NVlabs .pkl of "
            "stylegan2-ada-pytorch or stylegan3's StyleGAN2 (read without running the pickle's code).",
            inputs=[
                io.Combo.Input("generator", options=folder_paths.get_filename_list("stylegan2")),
                io.Combo.Input(
                    "precision",
                    options=list(PRECISIONS),
                    default="fp32",
                    optional=True,
                    tooltip="bf16: the generator, VGG-16 and the recognition network run under bf16 "
                    "autocast (latents, energies and the optimiser stay fp32)",
                ),
                io.Boolean.Input(
                    "gradient_checkpointing",
                    default=False,
                    optional=True,
                    tooltip="recompute the generator's activations in the backward pass: far less "
                    "memory at 1024 px for a slower step",
                ),
            ],
            outputs=[STYLEGAN.Output(display_name="stylegan")],
        )

    @classmethod
    def execute(cls, generator, precision="fp32", gradient_checkpointing=False) -> io.NodeOutput:
        path = folder_file("stylegan2", generator, "generator")
        with _autograd_mode():
            patcher = cached_patcher(path, build_stylegan2)
        info = dict(patcher.model.load_info)
        info.update(path=str(path), precision=precision, gradient_checkpointing=bool(gradient_checkpointing))
        return io.NodeOutput(StyleGANHandle(patcher, info))


class LoadRigNet(FaceControlNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FaceControlLoadRigNet",
            display_name="Load RigNet",
            category="FaceControl/PIE",
            description="RigNet weights from models/rignet (trained by scripts/train_rignet.py for one generator).",
            inputs=[io.Combo.Input("rignet", options=folder_paths.get_filename_list("rignet"))],
            outputs=[RIGNET.Output(display_name="rignet")],
        )

    @classmethod
    def execute(cls, rignet) -> io.NodeOutput:
        path = folder_file("rignet", rignet, "rignet")
        with _autograd_mode():
            return io.NodeOutput(RigNetHandle(cached_patcher(path, build_rignet), str(path)))


def _rignet_module(handle: RigNetHandle | None, models: pie.PIEModels):
    if handle is None:
        return None
    rignet = loaded_model(handle.patcher)
    generator, formation = models.generator, models.formation
    if (rignet.num_ws, rignet.w_dim) != (generator.num_ws, generator.w_dim):
        raise ValueError(
            f"'rignet' was trained for W+ of {rignet.num_ws}x{rignet.w_dim} but the generator has "
            f"{generator.num_ws}x{generator.w_dim}"
        )
    wrong = {tau: dim for tau, dim in rignet.tau_dims.items() if formation.tau_dims.get(tau) != dim}
    if wrong:
        raise ValueError(
            f"'rignet' was trained with parameter sizes {rignet.tau_dims}, but the face model "
            f"{formation.name} has {formation.tau_dims}; train a RigNet for this face model "
            f"(scripts/train_rignet.py --face-model {formation.name})"
        )
    return rignet


WEIGHT_INPUTS = [
    ("l2", 1.0, "E_synth: pixel L2 weight"),
    ("perceptual", 1.0, "E_synth: VGG-16 perceptual weight"),
    ("identity", 1.0, "E_identity: w = RigNet(w, theta_w)"),
    ("edit", 1.0, "E_edit: RigNet edits take v's parameters"),
    ("invariance", 1.0, "E_invariance: RigNet edits keep the other parameters"),
    ("recognition", 0.1, "E_recognition: identity (recognition_net) of I_w"),
    ("recognition_edit", 0.1, "E_recognition: identity (recognition_net) of the RigNet edits"),
    ("photo", 1.0, "l(I, theta): photometric weight"),
    ("landmark", 10.0, "l(I, theta): landmark weight"),
]
DIRECT_WEIGHT_INPUTS = [
    ("tau_weight", 10.0, "the edited groups reach their target"),
    ("keep_weight", 1.0, "the other parameters stay"),
    ("image_weight", 1.0, "the face renders like the target parameters"),
    ("recognition_weight", 0.1, "the identity (recognition_net) stays (0: no recognition network is loaded)"),
    ("latent_weight", 0.1, "the latent stays near the embedding"),
]
OPTIMIZER_TIP = (
    "adam (default: the step counts and rates here were tuned with it) or adadelta (PIE's optimiser; "
    "its lr is a multiplier, about 1)"
)


RECOGNITION_TIP = (
    "Psi of the recognition terms: ir_se50 (default; dva/pretrained_models/model_ir_se50.pth) or vgg_face "
    "(PIE's network; stylegan2/vgg_face_dag.pth, pytorch-mcn's conversion)"
)


def _recognition_input() -> io.Combo.Input:
    return io.Combo.Input(
        "recognition_net", options=list(pie.RECOGNITION_NETS), default="ir_se50", optional=True, tooltip=RECOGNITION_TIP
    )


def _optimizer_input(default_lr: float) -> list:
    return [
        io.Float.Input("lr", default=default_lr, min=1e-5, max=10.0, step=0.001),
        io.Combo.Input("optimizer", options=list(pie.OPTIMIZERS), default="adam", tooltip=OPTIMIZER_TIP),
    ]


class PIEEmbedSettings(FaceControlNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FaceControlPIEEmbedSettings",
            display_name="PIE Embed Settings",
            category="FaceControl/PIE",
            description="Optimiser and energy settings for PIE Embed (without this node PIE Embed uses these defaults: "
            "PIE's 2000 W + 1000 W+ steps and the pack's energy weights).",
            inputs=[
                io.Int.Input("steps_w", default=2000, min=0, max=100000, tooltip="steps in W (PIE: 2000)"),
                io.Int.Input("steps_wplus", default=1000, min=0, max=100000, tooltip="steps in W+ (PIE: 1000)"),
                *_optimizer_input(0.01),
                *[
                    io.Float.Input(name, default=value, min=0.0, max=1000.0, step=0.01, tooltip=tip)
                    for name, value, tip in WEIGHT_INPUTS
                ],
                io.Int.Input("seed", default=0, min=0, max=2**31 - 1, tooltip="draws the random v of E_edit"),
                io.Int.Input("chunk", default=4, min=0, max=1024, tooltip="portraits optimised together (0: all)"),
                _recognition_input(),
            ],
            outputs=[PIE_EMBED_SETTINGS.Output(display_name="settings")],
        )

    @classmethod
    def execute(
        cls, steps_w, steps_wplus, lr, optimizer, seed, chunk, recognition_net="ir_se50", **weights
    ) -> io.NodeOutput:
        if steps_w + steps_wplus <= 0:
            raise ValueError("'steps_w' + 'steps_wplus' must be at least 1")
        return io.NodeOutput(
            pie.EmbedConfig(
                steps_w=steps_w,
                steps_wplus=steps_wplus,
                lr=lr,
                optimizer=optimizer,
                seed=seed,
                chunk=chunk,
                recognition_net=recognition_net,
                weights=pie.PIEWeights(**weights),
            )
        )


class PIEEditSettings(FaceControlNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FaceControlPIEEditSettings",
            display_name="PIE Edit Settings",
            category="FaceControl/PIE",
            description="Direct-mode settings for PIE Edit (steps, optimiser, weights); without it PIE Edit uses "
            "these defaults.",
            inputs=[
                io.Int.Input("steps", default=100, min=1, max=10000),
                *_optimizer_input(0.01),
                *[
                    io.Float.Input(name, default=value, min=0.0, max=1000.0, step=0.01, tooltip=tip)
                    for name, value, tip in DIRECT_WEIGHT_INPUTS
                ],
                _recognition_input(),
            ],
            outputs=[PIE_EDIT_SETTINGS.Output(display_name="settings")],
        )

    @classmethod
    def execute(cls, **settings) -> io.NodeOutput:
        return io.NodeOutput(pie.DirectEditConfig(**settings))


class PIEEmbed(FaceControlNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FaceControlPIEEmbed",
            display_name="PIE Embed",
            category="FaceControl/PIE",
            description="Finds the StyleGAN2 latent of each face crop by minimising PIE's energy, first in W, then "
            "in W+. Without a RigNet only E_synth and E_recognition apply. Shows the current face as "
            "preview. Steps, optimiser and weights come from PIE Embed Settings (defaults without it).",
            inputs=[
                STYLEGAN.Input("stylegan"),
                io.Image.Input("crops", tooltip="FFHQ face crops (Align and Crop Faces, convention ffhq)"),
                RIGNET.Input("rignet", optional=True),
                io.Combo.Input(
                    "face_model",
                    options=list(FACE_MODELS),
                    default="ict_facekit",
                    optional=True,
                    tooltip="3DMM of the image loss: the open ICT-FaceKit (default) or the BFM with "
                    "Deep3DFaceRecon's regressor (epoch_20.pth, BFM_model_front.mat). "
                    "PIE Edit uses the same one.",
                ),
                PIE_EMBED_SETTINGS.Input("settings", optional=True),
                io.Int.Input(
                    "preview_every",
                    default=25,
                    min=0,
                    max=10000,
                    optional=True,
                    tooltip="steps between previews (0: none)",
                ),
            ],
            outputs=[
                PIE_LATENT.Output(display_name="pie_latent"),
                io.Image.Output(display_name="reconstruction"),
                io.String.Output(display_name="log"),
            ],
        )

    @classmethod
    def execute(
        cls, stylegan, crops, rignet=None, face_model="ict_facekit", settings=None, preview_every=25
    ) -> io.NodeOutput:
        with _autograd_mode():
            return cls._embed(stylegan, crops.clone(), settings or pie.EmbedConfig(), preview_every, rignet, face_model)

    @classmethod
    def _embed(cls, stylegan, crops, config: pie.EmbedConfig, preview_every, rignet, face_model) -> io.NodeOutput:
        weights = config.weights
        models = pie_models(
            stylegan,
            recognition=weights.recognition > 0 or weights.recognition_edit > 0,
            perceptual=weights.perceptual > 0,
            face_model=face_model,
            recognition_net=config.recognition_net,
        )
        image = _to_generator_input(crops, "crops", _device(models))
        result = pie.embed(
            models, image, config, rignet=_rignet_module(rignet, models), on_step=_Progress(preview_every)
        )
        first, last = result.history[0], result.history[-1]
        terms = [k for k in first if k not in ("stage", "tau", "total", "chunk")]
        text = "; ".join(f"E_{k} {first[k]:.4g} -> {last[k]:.4g}" for k in terms)
        log.info("PIE Embed (%d frames): %s", image.shape[0], text)
        with torch.no_grad():
            reconstruction = pie.synthesize(models.generator, result.w_plus)
        latent = PIELatent(
            result.w_plus.cpu(),
            {k: v.cpu() for k, v in result.theta.items()},
            crops.shape[1],
            stylegan.info.get("path", ""),
            result.history,
            face_model,
        )
        return io.NodeOutput(latent, _to_comfy_image(reconstruction, crops.shape[1]), text)


LIGHT_SLIDERS = {
    "light_intensity": "intensity",
    "light_from_top": "from_top",
    "light_from_right": "from_right",
    "light_from_front": "from_front",
}


class PIEEdit(FaceControlNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        slider = dict(min=-1.0, max=1.0, step=0.05, default=0.0)
        light = dict(
            min=-LIGHT_LIMIT,
            max=LIGHT_LIMIT,
            step=0.02,
            default=0.0,
            tooltip="SH light offset; limited where the irradiance would go negative on the visible face",
        )
        return io.Schema(
            node_id="FaceControlPIEEdit",
            display_name="PIE Edit",
            category="FaceControl/PIE",
            description="Changes head pose (degrees), expression and illumination of embedded portraits, or copies "
            "them from a reference face, through RigNet or, without one, by optimising the latent "
            "directly until the regressed 3DMM parameters of the generated face match (direct mode; "
            "its steps and weights come from PIE Edit Settings).",
            inputs=[
                STYLEGAN.Input("stylegan"),
                PIE_LATENT.Input("pie_latent"),
                io.Float.Input(
                    "yaw",
                    default=0.0,
                    min=-45.0,
                    max=45.0,
                    step=1.0,
                    tooltip="degrees; + turns the nose to image right",
                ),
                io.Float.Input(
                    "pitch", default=0.0, min=-45.0, max=45.0, step=1.0, tooltip="degrees; + tilts the nose down"
                ),
                io.Float.Input(
                    "roll",
                    default=0.0,
                    min=-45.0,
                    max=45.0,
                    step=1.0,
                    tooltip="degrees; + counter-clockwise in the image",
                ),
                *[io.Float.Input(name, **slider) for name in pie.EXPRESSION_SLIDERS],
                *[io.Float.Input(name, **light) for name in LIGHT_SLIDERS],
                io.Combo.Input(
                    "mode",
                    options=list(pie.EDIT_MODES),
                    default="auto",
                    optional=True,
                    tooltip="auto: RigNet when one is connected for this face model and the edited "
                    "groups, direct otherwise; the report says which ran",
                ),
                RIGNET.Input("rignet", optional=True),
                io.Image.Input("reference", optional=True, tooltip="FFHQ crop of a reference face"),
                io.Combo.Input(
                    "reference_groups",
                    options=list(REFERENCE_GROUPS),
                    default="none",
                    optional=True,
                    tooltip="which parameters to take from 'reference'",
                ),
                PIE_EDIT_SETTINGS.Input("settings", optional=True),
                io.Int.Input("preview_every", default=10, min=0, max=10000, optional=True),
            ],
            outputs=[PIE_LATENT.Output(display_name="pie_latent"), io.String.Output(display_name="report")],
        )

    @classmethod
    def execute(
        cls,
        stylegan,
        pie_latent: PIELatent,
        mode="auto",
        rignet=None,
        reference=None,
        reference_groups="none",
        settings=None,
        preview_every=10,
        **sliders,
    ) -> io.NodeOutput:
        with _autograd_mode():
            return cls._edit(
                stylegan,
                pie_latent,
                mode,
                rignet,
                None if reference is None else reference.clone(),
                reference_groups,
                settings,
                preview_every,
                sliders,
            )

    @classmethod
    def _edit(
        cls, stylegan, pie_latent, mode, rignet, reference, reference_groups, settings, preview_every, sliders
    ) -> io.NodeOutput:
        _check_generator(pie_latent, stylegan)
        groups = REFERENCE_GROUPS[reference_groups]
        if groups and reference is None:
            raise ValueError(f"'reference_groups' is {reference_groups!r} but no 'reference' image is connected")
        if mode == "rignet" and rignet is None:
            raise ValueError("'mode' is rignet but no 'rignet' is connected; load one or use mode auto or direct")
        config = settings or pie.DirectEditConfig()
        models = pie_models(
            stylegan,
            recognition=config.recognition_weight > 0,
            perceptual=False,
            face_model=pie_latent.face_model,
            recognition_net=config.recognition_net,
        )
        device = _device(models)
        request = pie.EditRequest(
            sliders["yaw"],
            sliders["pitch"],
            sliders["roll"],
            {name: sliders[name] for name in pie.EXPRESSION_SLIDERS},
            {axis: sliders[name] for name, axis in LIGHT_SLIDERS.items()},
            groups,
            _reference_theta(models, reference, device) if groups else None,
        )
        outcome = pie.run_edit(
            models,
            pie_latent.w_plus.clone().to(device),
            request,
            mode,
            _rignet_module(rignet, models),
            config,
            on_step=_Progress(preview_every),
        )
        log.info("PIE Edit: %s", outcome.report)
        return io.NodeOutput(replace(pie_latent, w_plus=outcome.w_plus.cpu()), outcome.report)


def _reference_theta(models: pie.PIEModels, reference: torch.Tensor, device: torch.device) -> dict:
    with torch.no_grad():
        ref = _to_generator_input(reference, "reference", device)
        ref = F.interpolate(ref, size=(models.generator.resolution,) * 2, mode="bilinear", antialias=True)
        return pie.detach_theta(models.formation.regress(ref))


class PIEDecode(FaceControlNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FaceControlPIEDecode",
            display_name="PIE Decode",
            category="FaceControl/PIE",
            description="Generates the faces of a PIE_LATENT, resized to the embedded crops' size for Paste Faces Back.",
            inputs=[
                STYLEGAN.Input("stylegan"),
                PIE_LATENT.Input("pie_latent"),
                io.Int.Input("size", default=0, min=0, max=4096, tooltip="output size; 0 = the embedded crops' size"),
            ],
            outputs=[io.Image.Output(display_name="image")],
        )

    @classmethod
    def execute(cls, stylegan, pie_latent: PIELatent, size) -> io.NodeOutput:
        _check_generator(pie_latent, stylegan)
        with _autograd_mode():
            generator = loaded_model(stylegan.patcher)
        generator.configure(compute_dtype=stylegan.info.get("precision", "fp32"))
        device = generator.device
        out = []
        with torch.inference_mode(False), torch.no_grad():
            for i in range(len(pie_latent)):
                check_interrupted()
                out.append(pie.synthesize(generator, pie_latent.w_plus[i : i + 1].to(device)))
        return io.NodeOutput(_to_comfy_image(torch.cat(out), size or pie_latent.crop_size))


NODES = [LoadStyleGAN2, LoadRigNet, PIEEmbedSettings, PIEEmbed, PIEEditSettings, PIEEdit, PIEDecode]
