"""Diffusion Video Autoencoders nodes: load, encode, edit (classifier, CLIP text), decode.

A video is an IMAGE batch of 256x256 FFHQ crops (Align and Crop Faces, convention ffhq, smooth on).
Encode keeps per-frame identity and landmark codes, DDIM-inverted noise and face masks in a DVA_LATENT;
an edit node changes only the video's identity code; Decode generates the crops again, and Paste Faces
Back puts them into the original frames through the decoded face masks.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import comfy.model_patcher
import folder_paths
import torch
from comfy_api.latest import io

from .. import model_names as names
from ..face.image import image_to_signed, image_to_unit, unit_to_image
from ..models.dva_checkpoint import DVAClassifierState, load_dva_networks, read_dva_classifier
from ..pipelines import dva
from .checks import FaceControlNode
from .common import (
    cached_object,
    cached_patcher,
    check_batch,
    check_image,
    free_memory,
    load_patchers,
    make_patcher,
    progress,
    resolve_model,
)
from .sockets import DVA_LATENT, DVA_MODEL, FACE_CROP

log = logging.getLogger("facecontrol")

AUX_FILES = {"idnet": names.DVA_IDNET, "lndnet": names.DVA_LNDNET, "bgnet": names.DVA_BGNET}
SOLVERS = tuple(dva.SOLVERS)
ENCODE_IDENTITIES = {"video average": "average", "per frame": "per-frame"}
DECODE_IDENTITIES = {"current (edit, else as encoded)": "current", "video average": "average", "per frame": "per-frame"}


@dataclass
class DVAModel:
    """The loaded DVA networks, each in a ModelPatcher; the pack holds these references."""

    unet: comfy.model_patcher.ModelPatcher
    encoder: comfy.model_patcher.ModelPatcher
    model_channels: int
    source: str
    precision: str = "fp32"  # fp32, fp16 or bf16 autocast for the UNet

    def load(self) -> torch.device:
        load_patchers([self.unet, self.encoder])
        return self.unet.load_device

    def predictor(self):
        """The UNet as called by the samplers, under this model's autocast precision."""
        return dva.with_precision(self.unet.model, self.precision)


def auto_precision(device: torch.device) -> str:
    """What ComfyUI's device settings choose for a diffusion model on `device` (fp16 first, as the authors)."""
    import comfy.model_management as mm

    dtype = mm.unet_dtype(device, supported_dtypes=[torch.float16, torch.bfloat16, torch.float32])
    return {torch.float16: "fp16", torch.bfloat16: "bf16"}.get(dtype, "fp32")


def checkpoint_options() -> list[str]:
    files = [n for n in folder_paths.get_filename_list("dva") if n.endswith(".ckpt") and "_cls" not in n]
    return sorted(files) or [names.DVA_CHECKPOINT]


def step_callback(total_hint: int) -> Callable[[int, int], None]:
    """Progress per model call, with a cancel check."""
    return progress(total_hint).update


def chunk_frames(model: DVAModel, device: torch.device, chunk_size: int) -> int:
    if chunk_size > 0:
        return chunk_size
    return dva.frames_per_chunk(free_memory(device, model.unet), model.model_channels, precision=model.precision)


def make_schedule(steps: int, respacing: str) -> dva.DDIMSchedule:
    try:
        return dva.DDIMSchedule.from_steps(steps, respacing)
    except ValueError as error:
        raise ValueError(
            f"'steps' = {steps} with respacing '{respacing}': {error}; use respacing 'auto' or 'even' "
            f"for any step count"
        ) from error


def crops_to_model_input(crops: torch.Tensor, input_name: str) -> torch.Tensor:
    check_image(crops, input_name)
    if tuple(crops.shape[1:3]) != (256, 256):
        raise ValueError(
            f"'{input_name}' are {crops.shape[2]}x{crops.shape[1]} but DVA works on 256x256 FFHQ crops: "
            f"set Align and Crop Faces to convention ffhq, size 256"
        )
    return image_to_signed(crops, "cpu")


class LoadDVA(FaceControlNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FaceControlLoadDVA",
            display_name="Load Diffusion Video Autoencoder",
            category="FaceControl/dva",
            description="Loads the DVA Lightning checkpoint (UNet + identity, landmark and face-parsing encoders). "
            "The UNet's width is read from the file.",
            inputs=[
                io.Combo.Input(
                    "checkpoint",
                    options=checkpoint_options(),
                    default=names.DVA_CHECKPOINT,
                    tooltip="in models/dva/: epoch=51-step=1000000.ckpt from the authors' release",
                ),
                io.Combo.Input(
                    "weights",
                    options=["ema", "model"],
                    default="ema",
                    tooltip="ema_model.* (what the authors' inference uses) or the training copy model.*",
                ),
                io.Combo.Input(
                    "encoders",
                    options=["checkpoint", "pretrained_models files"],
                    default="checkpoint",
                    tooltip="the frozen encoders inside the checkpoint, or model_ir_se50.pth, the "
                    "MobileNet .pth.tar and 79999_iter.pth from models/dva/pretrained_models/",
                ),
                io.Combo.Input(
                    "precision",
                    options=["auto", *dva.PRECISIONS],
                    default="auto",
                    optional=True,
                    tooltip="UNet autocast (the authors: fp16); auto follows ComfyUI's device settings "
                    "(fp32 on CPU); the schedule and x0 arithmetic stay in float32/float64",
                ),
            ],
            outputs=[DVA_MODEL.Output(display_name="dva_model")],
        )

    @classmethod
    def execute(cls, checkpoint, weights, encoders, precision="auto") -> io.NodeOutput:
        path = folder_paths.get_full_path("dva", checkpoint) or resolve_model("dva/" + checkpoint)
        aux = {k: str(resolve_model(v)) for k, v in AUX_FILES.items()} if encoders != "checkpoint" else None
        model = cached_object(Path(path), functools.partial(_build_dva_model, weights=weights, aux=aux))
        chosen = auto_precision(model.unet.load_device) if precision == "auto" else precision
        model = dataclasses.replace(model, precision=chosen)
        log.info("Load DVA: %s (%s weights, %d base channels, UNet %s)", path, weights, model.model_channels, chosen)
        return io.NodeOutput(model)


def _build_dva_model(path: Path, weights: str, aux: dict[str, str] | None) -> DVAModel:
    unet, encoder = load_dva_networks(str(path), weights, aux)
    return DVAModel(make_patcher(unet), make_patcher(encoder), unet.model_channels, str(path))


class DVAEncode(FaceControlNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FaceControlDVAEncode",
            display_name="DVA Encode",
            category="FaceControl/dva",
            description="Per frame: identity code (IR-SE50) and its video average, landmark code, face mask, and "
            "x_T by deterministic DDIM inversion with the average identity.",
            inputs=[
                DVA_MODEL.Input("dva_model"),
                io.Image.Input("crops", tooltip="256x256 FFHQ crops of every frame (Align and Crop Faces, smooth on)"),
                FACE_CROP.Input("face_crop", optional=True, tooltip="kept in the latent for paste-back"),
                io.Int.Input(
                    "steps",
                    default=20,
                    min=1,
                    max=1000,
                    tooltip="DDIM steps (paper: 100 for reconstruction; authors' default 1000)",
                ),
                io.Combo.Input(
                    "respacing",
                    options=["auto", "ddim", "even"],
                    default="auto",
                    tooltip="ddim: the authors' integer-stride rule (5, 20, 100, 1000 ...); even: any count; "
                    "auto: ddim when it fits",
                ),
                io.Int.Input(
                    "chunk_size", default=0, min=0, max=256, tooltip="frames per UNet call; 0 = from free memory"
                ),
                io.Combo.Input(
                    "solver",
                    options=list(SOLVERS),
                    default="ddim",
                    optional=True,
                    tooltip="ddim: the authors' inversion; dpm++2m: second-order multistep, same cost",
                ),
                io.Combo.Input(
                    "identity",
                    options=list(ENCODE_IDENTITIES),
                    default="video average",
                    optional=True,
                    tooltip="code x_T is inverted with: the video average (the authors' edit scripts) or "
                    "each frame's own (their metrics.py reconstruction protocol)",
                ),
            ],
            outputs=[DVA_LATENT.Output(display_name="dva_latent"), io.Mask.Output(display_name="face_masks")],
        )

    @classmethod
    def execute(
        cls,
        dva_model: DVAModel,
        crops,
        steps,
        respacing,
        chunk_size,
        face_crop=None,
        solver="ddim",
        identity="video average",
    ) -> io.NodeOutput:
        frames = crops_to_model_input(crops, "crops")
        if face_crop is not None:
            check_batch(len(frames), len(face_crop), "crops", "face_crop")
            if face_crop.crop_size != 256:
                raise ValueError(f"'face_crop' makes {face_crop.crop_size}px crops but 'crops' are 256px")
        schedule = make_schedule(steps, respacing)
        device = dva_model.load()
        chunk = chunk_frames(dva_model, device, chunk_size)
        latent = encode_with(solver, dva_model, frames, schedule, chunk, device, ENCODE_IDENTITIES[identity])
        latent.crops = crops.detach().float().cpu()
        latent.face_crop = face_crop
        log.info("DVA Encode: %d frames, %d steps (%s), %d frames per chunk", len(latent), len(schedule), solver, chunk)
        return io.NodeOutput(latent, latent.masks[:, 0].clone())


def encode_with(
    solver: str, dva_model: DVAModel, frames, schedule, chunk: int, device, identity: str = "average"
) -> dva.DVALatent:
    return dva.encode_video(
        dva_model.predictor(),
        dva_model.encoder.model,
        frames,
        schedule,
        chunk,
        device,
        step_callback(len(schedule)),
        identity,
        solver,
    )


def classifier_state() -> DVAClassifierState:
    return cached_object(resolve_model(names.DVA_CLASSIFIER), read_dva_classifier)


class DVAEditClassifier(FaceControlNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FaceControlDVAEditClassifier",
            display_name="DVA Edit (attribute)",
            category="FaceControl/dva",
            description="Moves the video's identity code along a CelebA attribute direction of the authors' linear "
            "classifier: l2norm(denorm(norm(z) + scale*sqrt(512)*unit(w))). A negative scale removes "
            "the attribute (No_Beard with a negative scale adds a beard). z is the latent's current "
            "code, so edits stack; DVA Reset Edit returns to the video's own code.",
            inputs=[
                DVA_LATENT.Input("dva_latent"),
                io.Combo.Input("attribute", options=list(dva.CELEBA_ATTRIBUTES), default="Mustache"),
                io.Float.Input("scale", default=0.25, min=-5.0, max=5.0, step=0.01),
                io.Boolean.Input(
                    "normalize", default=True, tooltip="the authors' normalised edit (always on in their script)"
                ),
            ],
            outputs=[DVA_LATENT.Output(display_name="dva_latent")],
        )

    @classmethod
    def execute(cls, dva_latent: dva.DVALatent, attribute, scale, normalize) -> io.NodeOutput:
        state = classifier_state()
        edited = dva.classifier_edit(
            dva_latent.current_code(), state.weight, attribute, scale, state.conds_mean, state.conds_std, normalize
        )
        return io.NodeOutput(dva_latent.with_edit(edited, f"{attribute} {scale:+g}"))


class DVADecode(FaceControlNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FaceControlDVADecode",
            display_name="DVA Decode",
            category="FaceControl/dva",
            description="Generates every frame's crop from its x_T with the (edited) identity code and the frame's "
            "landmark code. Feed the crops and face masks to Paste Faces Back.",
            inputs=[
                DVA_MODEL.Input("dva_model"),
                DVA_LATENT.Input("dva_latent"),
                io.Combo.Input(
                    "solver",
                    options=["as encoded", *SOLVERS],
                    default="as encoded",
                    tooltip="ddim: the authors' sampler; dpm++2m: second-order multistep on the same model; "
                    "the solver that inverted x_T reconstructs best",
                ),
                io.Int.Input(
                    "chunk_size", default=0, min=0, max=256, tooltip="frames per UNet call; 0 = from free memory"
                ),
                io.Combo.Input(
                    "identity",
                    options=list(DECODE_IDENTITIES),
                    default="current (edit, else as encoded)",
                    optional=True,
                    tooltip="identity code to generate with: the edited code (else the one "
                    "x_T was inverted with), the video average, or each frame's own "
                    "(the authors' reconstruction-metrics path)",
                ),
            ],
            outputs=[
                io.Image.Output(display_name="crops"),
                io.Mask.Output(display_name="face_masks"),
                FACE_CROP.Output(display_name="face_crop"),
            ],
        )

    @classmethod
    def execute(
        cls,
        dva_model: DVAModel,
        dva_latent: dva.DVALatent,
        solver,
        chunk_size,
        identity="current (edit, else as encoded)",
    ) -> io.NodeOutput:
        schedule = dva.DDIMSchedule.from_timesteps(list(dva_latent.timestep_map))
        device = dva_model.load()
        chunk = chunk_frames(dva_model, device, chunk_size)
        out = decode_with(
            dva_latent.solver if solver == "as encoded" else solver,
            dva_model,
            dva_latent,
            schedule,
            chunk,
            device,
            dva_latent.identity_codes(DECODE_IDENTITIES[identity]),
        )
        if dva_latent.face_crop is None:
            log.info("DVA Decode: the latent has no face_crop (Encode got none); paste-back needs one")
        return io.NodeOutput(unit_to_image(out), dva_latent.masks[:, 0].clone(), dva_latent.face_crop)


def decode_with(
    solver: str,
    dva_model: DVAModel,
    latent: dva.DVALatent,
    schedule,
    chunk: int,
    device,
    z_id: torch.Tensor | None = None,
) -> torch.Tensor:
    z_id = latent.identity_codes() if z_id is None else z_id
    return dva.decode_video(
        dva_model.predictor(),
        dva_model.encoder.model,
        latent,
        schedule,
        z_id,
        chunk,
        device,
        step_callback(len(schedule)),
        solver,
    )


class DVAResetEdit(FaceControlNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FaceControlDVAResetEdit",
            display_name="DVA Reset Edit",
            category="FaceControl/dva",
            description="Drops every edit of the latent, so Decode and the next edit use the video's own code again "
            "(edits otherwise stack: each starts from the latent's current code).",
            inputs=[DVA_LATENT.Input("dva_latent")],
            outputs=[DVA_LATENT.Output(display_name="dva_latent")],
        )

    @classmethod
    def execute(cls, dva_latent: dva.DVALatent) -> io.NodeOutput:
        return io.NodeOutput(dva_latent.without_edit())


NODES = [LoadDVA, DVAEncode, DVAEditClassifier, DVAResetEdit, DVADecode]


# the names of pipelines.dva_clip.CLIP_PRESETS (kept here so the schema needs no open_clip import)
CLIP_PRESET_NAMES = ("script defaults (id 5, scale 1.0)", "README example (id 1, scale 0.5)")


def _build_clip(path: Path) -> torch.nn.Module:
    from ..models.clip_archive import load_openai_clip

    with torch.inference_mode(False):
        return load_openai_clip(str(path))


def clip_patcher() -> comfy.model_patcher.ModelPatcher:
    return cached_patcher(resolve_model(names.DVA_CLIP), _build_clip)


class DVAEditCLIP(FaceControlNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FaceControlDVAEditCLIP",
            display_name="DVA Edit (text)",
            category="FaceControl/dva",
            description="The authors' CLIP edit: frame 0's 5-level DDIM reconstruction is fixed; each iteration takes "
            "one DDIM step from every level with the optimised code and scores it with StyleGAN-NADA's "
            "directional CLIP loss (79 prompt templates), 1 - cos on the codes and L1 inside the face "
            "mask. The latent's current code then moves by scale * (optimised - frame 0's code).",
            inputs=[
                DVA_MODEL.Input("dva_model"),
                DVA_LATENT.Input("dva_latent"),
                io.String.Input("target_text", default="face with beard"),
                io.String.Input("source_text", default="face"),
                io.Int.Input("iterations", default=2000, min=1, max=10000, tooltip="Adam steps (authors: 2000)"),
                io.Float.Input("lr", default=0.002, min=1e-5, max=1.0, step=0.0001),
                io.Int.Input(
                    "steps",
                    default=5,
                    min=1,
                    max=100,
                    tooltip="DDIM steps of the optimised reconstruction (authors: 5)",
                ),
                io.Combo.Input(
                    "preset",
                    options=[*CLIP_PRESET_NAMES, "custom"],
                    default=CLIP_PRESET_NAMES[0],
                    tooltip="the weights and scale of editing_CLIP.py's defaults or of the README's example "
                    "command; custom uses the four values below",
                ),
                io.Float.Input(
                    "scale",
                    default=1.0,
                    min=-5.0,
                    max=5.0,
                    step=0.01,
                    tooltip="how far the video code moves (custom preset only)",
                ),
                io.Float.Input("clip_weight", default=3.0, min=0.0, max=100.0, step=0.1, tooltip="custom preset only"),
                io.Float.Input("id_weight", default=5.0, min=0.0, max=100.0, step=0.1, tooltip="custom preset only"),
                io.Float.Input("l1_weight", default=5.0, min=0.0, max=100.0, step=0.1, tooltip="custom preset only"),
            ],
            outputs=[DVA_LATENT.Output(display_name="dva_latent"), io.String.Output(display_name="report")],
        )

    @classmethod
    def execute(
        cls,
        dva_model: DVAModel,
        dva_latent: dva.DVALatent,
        target_text,
        source_text,
        iterations,
        lr,
        steps,
        preset,
        scale,
        clip_weight,
        id_weight,
        l1_weight,
    ) -> io.NodeOutput:
        from ..pipelines.dva_clip import CLIP_PRESETS, ClipEditSettings, clip_direction_edit, levels_per_pass

        if not target_text.strip():
            raise ValueError("'target_text' is empty: describe the edited face, e.g. 'face with beard'")
        if dva_latent.crops is None:
            raise ValueError("'dva_latent' carries no crops; encode it with DVA Encode")
        weights = dict(scale=scale, clip_weight=clip_weight, id_weight=id_weight, l1_weight=l1_weight)
        settings = ClipEditSettings(
            target_text, source_text, iterations, lr, steps, **CLIP_PRESETS.get(preset, weights)
        )
        clip = clip_patcher()
        load_patchers([dva_model.unet, dva_model.encoder, clip])
        device = dva_model.unet.load_device
        settings.levels_per_pass = levels_per_pass(
            free_memory(device, dva_model.unet), dva_model.model_channels, steps, dva_model.precision
        )
        log.info("DVA Edit (CLIP): %d of %d trajectory levels per UNet pass", settings.levels_per_pass, steps)
        frame0 = crops_to_model_input(dva_latent.crops[:1], "dva_latent crops")
        with torch.inference_mode(False), torch.enable_grad():
            edited, losses = clip_direction_edit(
                dva_model.predictor(),
                dva_model.encoder.model,
                clip.model,
                frame0,
                dva_latent,
                settings,
                device,
                step_callback(iterations),
            )
        report = (
            f"'{source_text}' -> '{target_text}': loss {losses[0]:.4f} -> {losses[-1]:.4f} in {iterations} iterations"
        )
        return io.NodeOutput(dva_latent.with_edit(edited, report), report)


NODES.append(DVAEditCLIP)


class VideoMetrics(FaceControlNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FaceControlVideoMetrics",
            display_name="Face Video Metrics",
            category="FaceControl/dva",
            description="DVA's reconstruction metrics between two equally long crop sequences: SSIM (the authors' "
            "zero-padded form and the valid one), MS-SSIM, MSE, PSNR and LPIPS (AlexNet, from the "
            "metrics model folder), and temporal identity consistency TL-ID / TG-ID (STIT) of 'result' "
            "relative to 'original'.",
            inputs=[
                io.Image.Input("original", tooltip="the aligned crops that were encoded"),
                io.Image.Input("result", tooltip="decoded (reconstructed or edited) crops"),
                io.Combo.Input(
                    "identity",
                    options=["dlib", "IR-SE50 (DVA model)"],
                    default="dlib",
                    tooltip="identity network for TL-ID/TG-ID: dlib's descriptor on dlib's own aligned "
                    "chip, or DVA's IR-SE50 on the FFHQ crop (needs dva_model)",
                ),
                DVA_MODEL.Input("dva_model", optional=True),
            ],
            outputs=[io.String.Output(display_name="report")],
        )

    @classmethod
    def execute(cls, original, result, identity, dva_model: DVAModel | None = None) -> io.NodeOutput:
        from ..face.image import image_to_uint8
        from ..pipelines import metrics

        check_image(original, "original")
        check_image(result, "result")
        if original.shape != result.shape:
            raise ValueError(
                f"'original' is {tuple(original.shape)} but 'result' is {tuple(result.shape)}: "
                f"compare crops of the same frames"
            )
        x, y = image_to_unit(original, "cpu"), image_to_unit(result, "cpu")
        lines = [
            f"frames: {len(x)}",
            f"SSIM {metrics.ssim(x, y, 'zero').mean():.4f} (authors' zero-padded), "
            f"{metrics.ssim(x, y, 'valid').mean():.4f} (valid)",
            f"MSE {metrics.mse(x, y).mean():.5f}",
            f"PSNR {metrics.psnr(x, y).mean():.2f} dB",
        ]
        if min(x.shape[2:]) > 160:
            lines.append(f"MS-SSIM {metrics.ms_ssim(x, y).mean():.4f}")
        lines.append(lpips_line(x, y))
        if len(x) >= 2:
            net = identity_net(identity, dva_model)
            scores = metrics.identity_consistency(image_to_uint8(result), image_to_uint8(original), net)
            lines.append(f"TL-ID {scores['TL-ID']:.4f} TG-ID {scores['TG-ID']:.4f} ({identity})")
            lines.append(f"identity network: {net.name}")
        report = "; ".join(lines)
        log.info("Face Video Metrics: %s", report)
        return io.NodeOutput(report)


def lpips_line(x: torch.Tensor, y: torch.Tensor) -> str:
    from .. import model_files
    from ..pipelines import metrics

    try:
        net = cached_object(resolve_model(names.METRIC_LPIPS_ALEX), lambda _: metrics.load_lpips_net(resolve_model))
    except model_files.ModelFileNotFound as missing:
        return f"LPIPS not computed: {missing.entry.filename} is not in the metrics model folder"
    return f"LPIPS {metrics.lpips(net, x, y).mean():.4f}"


class _IdentityCode(torch.nn.Module):
    """DVA's encoder as an identity network: z_id of [-1,1] FFHQ crops."""

    def __init__(self, encoder: torch.nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder.id_forward(x)


def identity_net(identity: str, dva_model: DVAModel | None):
    from ..pipelines import metrics

    if identity == "dlib":
        return cached_object(
            resolve_model(names.METRIC_DLIB_DESCRIPTOR), lambda _: metrics.load_identity_net("dlib", resolve_model)
        )
    if dva_model is None:
        raise ValueError("identity 'IR-SE50 (DVA model)' needs 'dva_model' connected")
    dva_model.load()
    return metrics.IRSE50Identity(_IdentityCode(dva_model.encoder.model))


NODES.append(VideoMetrics)
