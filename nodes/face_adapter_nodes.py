"""Face-Adapter in ComfyUI: the bundle loader, identity tokens, attribute tokens, the attribute ControlNet, the blend.

Sampling stays ComfyUI's: the user's SD1.5 MODEL/CLIP/VAE, KSampler, and the Face-Adapter ControlNet attached
through ComfyUI's ControlNet machinery. The ControlNet reads its own cross-attention context (the attribute
tokens on the positive side, the empty-prompt embedding on the negative side) and a hint in [-1,1].
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import comfy.controlnet
import comfy.model_management as mm
import comfy.utils
import torch
from comfy_api.latest import io

from .. import model_files
from .. import model_names as names
from ..face.image import image_to_signed
from ..models.checkpoint import read_safetensors, read_state, reading_model_file
from ..models.face_adapter_vision import load_clip_vision_tower
from ..models.iresnet import load_iresnet100
from ..models.token_mappers import load_token_mapper
from ..pipelines import face_adapter as fa
from .checks import FaceControlNode
from .common import (
    cached_object,
    cached_patcher,
    check_batch,
    check_image,
    image_to_uint8,
    images_with_mask,
    load_patchers,
    progress,
    resolve_model,
)
from .face_nodes import in_network_dtype
from .sockets import FACE_ADAPTER, FACE_ADAPTER_TOKENS

log = logging.getLogger("facecontrol")

# The manifest names of the files the loader needs, in the HF FaceAdapter/FaceAdapter layout.
BUNDLE_FILES = {
    "id2token": names.FA_ID2TOKEN,
    "image2token": names.FA_IMAGE2TOKEN,
    "controlnet_config": names.FA_CONTROLNET_CONFIG,
    "controlnet": names.FA_CONTROLNET,
    "vision_config": names.FA_VISION_CONFIG,
    "vision": names.FA_VISION,
    "iresnet": names.FA_IRESNET,
}

NEGATIVES = ("empty prompt (released code)", "target identity (paper, swap)")
TOKEN_CHUNK = 8


# ---------------------------------------------------------------- the attribute ControlNet


def diffusers_controlnet_to_ldm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A diffusers ControlNetModel state dict renamed to ComfyUI's (ldm) ControlNet keys.

    The block layout is read from the keys, so any SD1.5-shaped ControlNet converts, not only the
    configurations ComfyUI's diffusers detector lists; ComfyUI then builds and loads it as usual.
    """
    config = _ldm_config_from_diffusers(state)
    key_map = comfy.utils.unet_to_diffusers(config)
    key_map["controlnet_mid_block.weight"] = "middle_block_out.0.weight"
    key_map["controlnet_mid_block.bias"] = "middle_block_out.0.bias"
    i = 0
    while f"controlnet_down_blocks.{i}.weight" in state:
        for s in ("weight", "bias"):
            key_map[f"controlnet_down_blocks.{i}.{s}"] = f"zero_convs.{i}.0.{s}"
        i += 1
    hint = ["controlnet_cond_embedding.conv_in"]
    j = 0
    while f"controlnet_cond_embedding.blocks.{j}.weight" in state:
        hint.append(f"controlnet_cond_embedding.blocks.{j}")
        j += 1
    hint.append("controlnet_cond_embedding.conv_out")
    for index, name in enumerate(hint):
        for s in ("weight", "bias"):
            key_map[f"{name}.{s}"] = f"input_hint_block.{2 * index}.{s}"
    converted = {key_map[k]: v for k, v in state.items() if k in key_map}
    leftover = sorted(set(state) - set(key_map))
    if leftover:
        raise ValueError(f"the Face-Adapter ControlNet has keys no SD1.5 ControlNet has: {', '.join(leftover[:10])}")
    return converted


def _count(state: dict, pattern: str) -> int:
    n = 0
    while any(k.startswith(pattern.format(n) + ".") for k in state):
        n += 1
    return n


def _ldm_config_from_diffusers(state: dict) -> dict:
    if "conv_in.weight" not in state:
        raise ValueError("not a diffusers ControlNet state dict: 'conv_in.weight' is missing")
    model_channels = state["conv_in.weight"].shape[0]
    levels = _count(state, "down_blocks.{}")
    num_res_blocks, channel_mult, depth = [], [], []
    for level in range(levels):
        resnets = _count(state, f"down_blocks.{level}.resnets.{{}}")
        num_res_blocks.append(resnets)
        out_ch = state[f"down_blocks.{level}.resnets.0.conv1.weight"].shape[0]
        channel_mult.append(out_ch // model_channels)
        for r in range(resnets):
            depth.append(_count(state, f"down_blocks.{level}.attentions.{r}.transformer_blocks.{{}}"))
    output_depth = [0] * sum(n + 1 for n in num_res_blocks)
    if any(k.startswith("up_blocks.") for k in state):  # a UNet: unet_to_diffusers pops these from the end
        in_up_order = [
            _count(state, f"up_blocks.{level}.attentions.{r}.transformer_blocks.{{}}")
            for level in range(_count(state, "up_blocks.{}"))
            for r in range(_count(state, f"up_blocks.{level}.resnets.{{}}"))
        ]
        output_depth = in_up_order[::-1]
    return {
        "num_res_blocks": num_res_blocks,
        "channel_mult": channel_mult,
        "transformer_depth": depth,
        "transformer_depth_output": output_depth,
        "transformer_depth_middle": _count(state, "mid_block.attentions.0.transformer_blocks.{}"),
    }


# ---------------------------------------------------------------- the release's UNet


def diffusers_unet_to_ldm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A diffusers UNet2DConditionModel state dict renamed to ComfyUI's (ldm) UNet keys with ComfyUI's own
    map (comfy.utils.unet_to_diffusers), the block layout read from the keys."""
    key_map = comfy.utils.unet_to_diffusers(_ldm_config_from_diffusers(state))
    leftover = sorted(set(state) - set(key_map))
    if leftover:
        raise ValueError(f"pretrained_unet has keys no SD1.5 UNet has: {', '.join(leftover[:10])}")
    return {key_map[k]: v for k, v in state.items()}


UNET_CONFIG_EXPECTED = {"in_channels": 4, "out_channels": 4, "cross_attention_dim": 768}


def load_release_unet(weights_path: Path):
    """The release's pretrained_unet/ (diffusers config.json + diffusion_pytorch_model.safetensors) as a
    ComfyUI MODEL, built by ComfyUI's own loader (comfy.sd.load_diffusion_model_state_dict)."""
    import comfy.sd

    folder = weights_path.parent
    config = _read_config(folder / "config.json")
    for field, value in UNET_CONFIG_EXPECTED.items():
        if field in config and config[field] != value:
            raise ValueError(
                f"{folder / 'config.json'}: {field} is {config[field]!r}, but Face-Adapter's UNet is an "
                f"SD1.5 UNet ({field} {value!r})"
            )
    state = read_state(weights_path)
    model = comfy.sd.load_diffusion_model_state_dict(diffusers_unet_to_ldm(state))
    if model is None:
        raise ValueError(f"ComfyUI could not detect an SD1.5 UNet in {weights_path}")
    return model


UNET_CHOICES = ("auto", "release pretrained_unet", "checkpoint's UNet")


class FaceAdapterUNet(FaceControlNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FaceControlFaceAdapterUNet",
            display_name="Face-Adapter UNet",
            category="FaceControl/face_adapter",
            description="The UNet to sample with. The authors' run replaces SD1.5's UNet with the release's "
            "pretrained_unet/ (a diffusers UNet2DConditionModel) when it exists; auto does the same, "
            "loading it through ComfyUI's own diffusion-model loader, and passes the checkpoint's "
            "MODEL through otherwise. unet_used names what was chosen.",
            inputs=[
                io.Model.Input("model", tooltip="the SD1.5 checkpoint's MODEL (used when pretrained_unet/ is absent)"),
                io.Combo.Input("unet", options=list(UNET_CHOICES), default="auto"),
            ],
            outputs=[io.Model.Output(display_name="model"), io.String.Output(display_name="unet_used")],
        )

    @classmethod
    def fingerprint_inputs(cls, **inputs) -> str:
        unet = inputs.get("unet", "auto")
        try:
            path = resolve_model(names.FA_UNET)
            return f"{unet}:{path}:{path.stat().st_mtime}"
        except model_files.ModelFileNotFound:
            return f"{unet}:missing"

    @classmethod
    def execute(cls, model, unet) -> io.NodeOutput:
        if unet == "checkpoint's UNet":
            return io.NodeOutput(model, "checkpoint's UNet (chosen)")
        try:
            path = resolve_model(names.FA_UNET)
        except model_files.ModelFileNotFound:
            if unet != "auto":
                raise
            log.info("Face-Adapter UNet: %s not found, sampling with the checkpoint's UNet", names.FA_UNET)
            return io.NodeOutput(model, "checkpoint's UNet (pretrained_unet/ not found)")
        log.info("Face-Adapter UNet: the release's %s", path.parent)
        return io.NodeOutput(cached_object(path, load_release_unet), f"release pretrained_unet ({path.parent})")


def _merge_controls(control: dict | None, previous: dict | None) -> dict | None:
    """Add an earlier ControlNet's residuals to ours, as ComfyUI's chaining does."""
    if control is None or previous is None:
        return control if previous is None else previous
    out = {}
    for key in ("input", "middle", "output"):
        mine, prev = list(control.get(key, [])), previous.get(key, [])
        for i, p in enumerate(prev):
            if i >= len(mine):
                mine.append(p)
            elif p is not None:
                mine[i] = p if mine[i] is None else mine[i] + p
        out[key] = mine
    return out


class FaceAdapterControlNet(comfy.controlnet.ControlNet):
    """ComfyUI's ControlNet with its own cross-attention context per side of CFG.

    One object serves the positive and the negative conditioning (so ComfyUI still batches them); the
    rows of the batch that belong to the positive side get the attribute tokens, the negative rows the
    empty-prompt embedding, found through transformer_options["cond_or_uncond"]. The text context of
    the conditioning is left alone, so ControlNets chained before or after this one see their usual input.
    """

    positive_context: torch.Tensor | None = None
    negative_context: torch.Tensor | None = None

    @classmethod
    def wrap(cls, control: comfy.controlnet.ControlNet) -> "FaceAdapterControlNet":
        net = cls(
            None,
            global_average_pooling=control.global_average_pooling,
            load_device=control.load_device,
            manual_cast_dtype=control.manual_cast_dtype,
        )
        net.control_model = control.control_model
        net.control_model_wrapped = control.control_model_wrapped
        control.copy_to(net)
        return net

    def copy(self) -> "FaceAdapterControlNet":
        c = FaceAdapterControlNet.wrap(self)
        c.positive_context = self.positive_context
        c.negative_context = self.negative_context
        return c

    def context_rows(self, rows: int, batched_number: int, transformer_options: dict) -> torch.Tensor:
        flags = transformer_options.get("cond_or_uncond") or [0] * batched_number
        per_chunk = rows // len(flags)
        chunks = [self.positive_context if flag == 0 else self.negative_context for flag in flags]
        return torch.cat([comfy.utils.repeat_to_batch_size(c, per_chunk) for c in chunks])

    def get_control(self, x_noisy, t, cond, batched_number, transformer_options):
        earlier = self.previous_controlnet
        control_prev = earlier.get_control(x_noisy, t, cond, batched_number, transformer_options) if earlier else None
        own = dict(cond)
        own["crossattn_controlnet"] = self.context_rows(x_noisy.shape[0], batched_number, transformer_options)
        self.previous_controlnet = None
        try:
            control = super().get_control(x_noisy, t, own, batched_number, transformer_options)
        finally:
            self.previous_controlnet = earlier
        return _merge_controls(control, control_prev)


def load_face_adapter_controlnet(folder: Path) -> FaceAdapterControlNet:
    """controlnet/ (diffusers config.json + diffusion_pytorch_model.safetensors) -> FaceAdapterControlNet."""
    check_controlnet_config(_read_config(folder / "config.json"), folder / "config.json")
    state = read_safetensors(folder / "diffusion_pytorch_model.safetensors")
    return controlnet_from_diffusers_state(state, str(folder))


def _read_config(path: Path) -> dict:
    with reading_model_file(path, "JSON config"):
        return json.loads(path.read_text())


# What the key conversion and ComfyUI's ControlNet assume of controlnet/config.json (diffusers' SD1.5 defaults).
# A field the file leaves out takes diffusers' default, which is the value here.
CONTROLNET_CONFIG_EXPECTED = {
    "controlnet_conditioning_channel_order": "rgb",
    "conditioning_channels": 3,
    "conditioning_embedding_out_channels": [16, 32, 96, 256],
    "cross_attention_dim": 768,
    "in_channels": 4,
    "upcast_attention": False,
    "global_pool_conditions": False,
    "use_linear_projection": False,
    "class_embed_type": None,
    "addition_embed_type": None,
    "num_class_embeds": None,
    "only_cross_attention": False,
    "resnet_time_scale_shift": "default",
}
SD15_HEADS = 8  # attention_head_dim in diffusers' SD1.5 configs is the head count (8)


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def check_controlnet_config(config: dict, path: Path | str) -> None:
    """Every field the conversion assumes has its SD1.5 value; else an error naming the field and value."""
    problems = [
        f"{field} is {config[field]!r} (expected {value!r})"
        for field, value in CONTROLNET_CONFIG_EXPECTED.items()
        if field in config and _plain(config[field]) != value
    ]
    for field in ("attention_head_dim", "num_attention_heads"):
        heads = config.get(field)
        if heads is not None and any(h != SD15_HEADS for h in (heads if isinstance(heads, list) else [heads])):
            problems.append(f"{field} is {heads!r} (expected {SD15_HEADS})")
    blocks = config.get("down_block_types")
    if blocks is not None and any(b not in ("CrossAttnDownBlock2D", "DownBlock2D") for b in blocks):
        problems.append(f"down_block_types is {blocks!r} (expected CrossAttnDownBlock2D / DownBlock2D blocks)")
    if config.get("mid_block_type", "UNetMidBlock2DCrossAttn") != "UNetMidBlock2DCrossAttn":
        problems.append(f"mid_block_type is {config['mid_block_type']!r} (expected 'UNetMidBlock2DCrossAttn')")
    if problems:
        raise ValueError(
            f"{path}: not the SD1.5 ControlNet the Face-Adapter conversion is written for: " + "; ".join(problems)
        )


def controlnet_from_diffusers_state(
    state: dict[str, torch.Tensor], source: str = "state dict"
) -> FaceAdapterControlNet:
    """Build through ComfyUI's own ControlNet loader (dtype, device, ModelPatcher), then wrap."""
    control = comfy.controlnet.load_controlnet_state_dict(diffusers_controlnet_to_ldm(dict(state)))
    if control is None:
        raise ValueError(f"ComfyUI could not build a ControlNet from {source}")
    return FaceAdapterControlNet.wrap(control)


# ---------------------------------------------------------------- the bundle


@dataclass
class FaceAdapterBundle:
    """The loaded Face-Adapter networks, each owned by ComfyUI's memory manager through a ModelPatcher."""

    id2token: object
    image2token: object
    iresnet: object
    vision: object
    controlnet: FaceAdapterControlNet
    folder: Path


def resolve_bundle() -> dict[str, Path]:
    """Every bundle file's path; one error naming each missing file with the paths searched."""
    found, missing = {}, []
    for role, name in BUNDLE_FILES.items():
        try:
            found[role] = resolve_model(name)
        except model_files.ModelFileNotFound as err:
            missing.append(str(err))
    if missing:
        raise FileNotFoundError(
            f"the Face-Adapter bundle is incomplete ({len(missing)} file(s) missing):\n\n" + "\n\n".join(missing)
        )
    return found


def _build_vision(config_path: Path) -> torch.nn.Module:
    return load_clip_vision_tower(config_path.parent)


def _build_id2token(path: Path) -> torch.nn.Module:
    return load_token_mapper(path, "id2token")


def _build_image2token(path: Path) -> torch.nn.Module:
    return load_token_mapper(path, "image2token")


def _build_controlnet(weights_path: Path) -> FaceAdapterControlNet:
    return load_face_adapter_controlnet(weights_path.parent)


def load_bundle() -> FaceAdapterBundle:
    paths = resolve_bundle()
    return FaceAdapterBundle(
        # the token mappers stay fp32: 77 tokens cost nothing, and their attention over large features is
        # where reduced precision hurts (bf16 moved filled-weight tokens by 43%); the backbones take the device dtype
        id2token=cached_patcher(paths["id2token"], _build_id2token),
        image2token=cached_patcher(paths["image2token"], _build_image2token),
        iresnet=cached_patcher(paths["iresnet"], in_network_dtype(load_iresnet100)),
        vision=cached_patcher(paths["vision_config"], in_network_dtype(_build_vision)),
        controlnet=cached_object(paths["controlnet"], _build_controlnet),
        folder=paths["id2token"].parent,
    )


class LoadFaceAdapter(FaceControlNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FaceControlLoadFaceAdapter",
            display_name="Load Face-Adapter",
            category="FaceControl/face_adapter",
            description="Reads the Hugging Face FaceAdapter/FaceAdapter release unchanged from models/face_adapter/: "
            "net_id2token.pth, net_image2token.pth, controlnet/, vision_encoder/ and "
            "third_party/insightface_glint360k.pth. A missing file is named with every path searched.",
            inputs=[],
            outputs=[FACE_ADAPTER.Output(display_name="face_adapter")],
        )

    @classmethod
    def fingerprint_inputs(cls) -> str:
        """Run again when a bundle file appears, disappears or changes."""
        stamps = []
        for name in BUNDLE_FILES.values():
            try:
                path = resolve_model(name)
                stamps.append(f"{path}:{path.stat().st_mtime}")
            except model_files.ModelFileNotFound:
                stamps.append(f"{name}:missing")
        return "|".join(stamps)

    @classmethod
    def execute(cls) -> io.NodeOutput:
        return io.NodeOutput(load_bundle())


# ---------------------------------------------------------------- tokens


def _chunks(n: int):
    tick = progress(n)
    for start in range(0, n, TOKEN_CHUNK):
        yield slice(start, min(n, start + TOKEN_CHUNK))
        tick(min(n, start + TOKEN_CHUNK) - 1)


def compute_identity_tokens(bundle: FaceAdapterBundle, crops256: torch.Tensor, input_name: str) -> torch.Tensor:
    check_image(crops256, input_name)
    if tuple(crops256.shape[1:3]) != (256, 256):
        raise ValueError(
            f"'{input_name}' must be 256x256 ArcFace-template crops (Align and Crop Faces, convention "
            f"arcface256); got {crops256.shape[2]}x{crops256.shape[1]}"
        )
    load_patchers([bundle.iresnet, bundle.id2token])
    iresnet, id2token = bundle.iresnet.model, bundle.id2token.model
    x = image_to_signed(crops256)
    return torch.cat([fa.identity_tokens(iresnet, id2token, x[s]).cpu() for s in _chunks(len(x))])


def compute_attribute_tokens(bundle: FaceAdapterBundle, crops512: torch.Tensor, input_name: str) -> torch.Tensor:
    frames = image_to_uint8(crops512, input_name)
    if frames.shape[1:3] != (512, 512):
        raise ValueError(
            f"'{input_name}' must be Face-Adapter 512 crops (Align and Crop Faces, convention "
            f"faceadapter512); got {frames.shape[2]}x{frames.shape[1]}"
        )
    load_patchers([bundle.vision, bundle.image2token])
    vision, image2token = bundle.vision.model, bundle.image2token.model
    pixels = fa.clip_pixel_values(frames)
    return torch.cat([fa.attribute_tokens(vision, image2token, pixels[s]).cpu() for s in _chunks(len(pixels))])


def _first_tokens(conditioning, input_name: str) -> torch.Tensor:
    if not conditioning:
        raise ValueError(f"'{input_name}' is empty; connect CLIP Text Encode with an empty text")
    tokens = conditioning[0][0]
    if tokens.shape[-1] != 768:
        raise ValueError(
            f"'{input_name}' has width {tokens.shape[-1]}; Face-Adapter needs an SD1.5 (768) text embedding"
        )
    return tokens


class FaceAdapterIdentity(FaceControlNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FaceControlFaceAdapterIdentity",
            display_name="Face-Adapter Identity Tokens",
            category="FaceControl/face_adapter",
            description="The source face's identity as 77 tokens for the UNet: iresnet100 (Glint360K) layer4 map of the "
            "256 ArcFace crop at 128 px (64 tokens) through ID2Token. Negative: the empty-prompt embedding is "
            "the default because the released code samples with it and the model was trained with dropped "
            "conditions standing for it; the paper's swap variant uses the target's identity tokens instead, "
            "which pushes away from the target's identity.",
            inputs=[
                FACE_ADAPTER.Input("face_adapter"),
                io.Image.Input("source_256", tooltip="the source's 256 ArcFace-template crops (convention arcface256)"),
                io.Conditioning.Input("empty_prompt", tooltip="CLIP Text Encode of an empty text with the SD1.5 CLIP"),
                io.Combo.Input(
                    "negative",
                    options=list(NEGATIVES),
                    default=NEGATIVES[0],
                    tooltip="empty prompt: as the released code; target identity: the paper's choice for swapping",
                ),
                io.Image.Input(
                    "target_256", optional=True, tooltip="the target's 256 crops, for the target-identity negative"
                ),
            ],
            outputs=[io.Conditioning.Output(display_name="positive"), io.Conditioning.Output(display_name="negative")],
        )

    @classmethod
    def execute(cls, face_adapter, source_256, empty_prompt, negative, target_256=None) -> io.NodeOutput:
        positive = [[compute_identity_tokens(face_adapter, source_256, "source_256"), {}]]
        if negative == NEGATIVES[0]:
            return io.NodeOutput(positive, empty_prompt)
        if target_256 is None:
            raise ValueError("negative = 'target identity (paper, swap)' needs 'target_256' (the target's 256 crops)")
        check_batch(len(source_256), len(target_256), "source_256", "target_256")
        return io.NodeOutput(positive, [[compute_identity_tokens(face_adapter, target_256, "target_256"), {}]])


class FaceAdapterAttributes(FaceControlNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FaceControlFaceAdapterAttributes",
            display_name="Face-Adapter Attribute Tokens",
            category="FaceControl/face_adapter",
            description="77 attribute tokens for the ControlNet: the fine-tuned CLIP ViT-H/14 last hidden state "
            "(CLS + 256 patches, before post-layernorm) of the 512 crop through Image2Token. Use the "
            "source's crop for reenactment and the target's for swapping.",
            inputs=[
                FACE_ADAPTER.Input("face_adapter"),
                io.Image.Input("crops_512", tooltip="Face-Adapter 512 crops (convention faceadapter512)"),
            ],
            outputs=[FACE_ADAPTER_TOKENS.Output(display_name="attribute_tokens")],
        )

    @classmethod
    def execute(cls, face_adapter, crops_512) -> io.NodeOutput:
        return io.NodeOutput(compute_attribute_tokens(face_adapter, crops_512, "crops_512"))


class FaceAdapterApplyControlNet(FaceControlNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FaceControlFaceAdapterApplyControlNet",
            display_name="Apply Face-Adapter ControlNet",
            category="FaceControl/face_adapter",
            description="Attaches the Face-Adapter ControlNet to both conditionings like Apply ControlNet (Advanced), "
            "chaining any earlier ControlNet. Its hint is the spatial control image mapped to [-1,1]; its "
            "cross-attention context is the attribute tokens on the positive side and the empty-prompt "
            "embedding on the negative side.",
            inputs=[
                io.Conditioning.Input("positive"),
                io.Conditioning.Input("negative"),
                FACE_ADAPTER.Input("face_adapter"),
                io.Image.Input("control_image", tooltip="Face-Adapter Spatial Control output (512, in [0,1])"),
                FACE_ADAPTER_TOKENS.Input("attribute_tokens"),
                io.Conditioning.Input(
                    "empty_prompt", tooltip="CLIP Text Encode of an empty text: the ControlNet's negative context"
                ),
                io.Float.Input("strength", default=1.0, min=0.0, max=10.0, step=0.01),
                io.Float.Input("start_percent", default=0.0, min=0.0, max=1.0, step=0.001),
                io.Float.Input("end_percent", default=1.0, min=0.0, max=1.0, step=0.001),
            ],
            outputs=[io.Conditioning.Output(display_name="positive"), io.Conditioning.Output(display_name="negative")],
        )

    @classmethod
    def execute(
        cls,
        positive,
        negative,
        face_adapter,
        control_image,
        attribute_tokens,
        empty_prompt,
        strength,
        start_percent,
        end_percent,
    ) -> io.NodeOutput:
        if strength == 0:
            return io.NodeOutput(positive, negative)
        check_image(control_image, "control_image")
        check_batch(len(control_image), len(attribute_tokens), "control_image", "attribute_tokens")
        hint = image_to_signed(control_image)
        empty = _first_tokens(empty_prompt, "empty_prompt")
        nets: dict = {}
        out = []
        for conditioning in (positive, negative):
            entries = []
            for tokens, options in conditioning:
                d = options.copy()
                earlier = d.get("control", None)
                if earlier not in nets:
                    net = face_adapter.controlnet.copy().set_cond_hint(hint, strength, (start_percent, end_percent))
                    net.positive_context = attribute_tokens
                    net.negative_context = empty
                    net.set_previous_controlnet(earlier)
                    nets[earlier] = net
                d["control"] = nets[earlier]
                d["control_apply_to_uncond"] = False
                entries.append([tokens, d])
            out.append(entries)
        return io.NodeOutput(out[0], out[1])


# ---------------------------------------------------------------- blend


class FaceAdapterBlend(FaceControlNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FaceControlFaceAdapterBlend",
            display_name="Face-Adapter Blend",
            category="FaceControl/face_adapter",
            description="Mixes the decoded result with the base crop through the adapting-area mask feathered as the "
            "authors do (max-pool 17, then average-pool 17). Paste the result back with Paste Faces Back "
            "and the returned blend_mask.",
            inputs=[
                io.Image.Input("generated", tooltip="VAE Decode output, 512x512"),
                io.Image.Input(
                    "base", tooltip="the base 512 crops: the source's for reenactment, the target's for swapping"
                ),
                io.Mask.Input("mask", tooltip="the adapting-area mask (512)"),
            ],
            outputs=[io.Image.Output(display_name="image"), io.Mask.Output(display_name="blend_mask")],
        )

    @classmethod
    def execute(cls, generated, base, mask) -> io.NodeOutput:
        images, masks = images_with_mask(
            {"generated": generated, "base": base}, mask, hint="; sample at the crop size (512x512)"
        )
        weight = fa.feather_mask(masks)
        out = fa.blend(images["generated"], images["base"], weight)
        return io.NodeOutput(out.clamp(0, 1), weight)


class FaceAdapterSharedNoiseLatent(FaceControlNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FaceControlFaceAdapterSharedNoiseLatent",
            display_name="Face-Adapter Video Latent (same noise every frame)",
            category="FaceControl/face_adapter",
            description="An empty latent with one item per control frame whose items all draw the same noise from "
            "KSampler's seed (every item has batch index 0), so frames differ only by their conditions.",
            inputs=[
                io.Image.Input("control_image", tooltip="the per-frame control images; their count sets the batch"),
                io.Int.Input("width", default=512, min=64, max=4096, step=8),
                io.Int.Input("height", default=512, min=64, max=4096, step=8),
            ],
            outputs=[io.Latent.Output(display_name="latent")],
        )

    @classmethod
    def execute(cls, control_image, width, height) -> io.NodeOutput:
        check_image(control_image, "control_image")
        n = len(control_image)
        samples = torch.zeros(n, 4, height // 8, width // 8, device=mm.intermediate_device())
        return io.NodeOutput({"samples": samples, "batch_index": [0] * n})


NODES = [
    LoadFaceAdapter,
    FaceAdapterUNet,
    FaceAdapterIdentity,
    FaceAdapterAttributes,
    FaceAdapterApplyControlNet,
    FaceAdapterBlend,
    FaceAdapterSharedNoiseLatent,
]
