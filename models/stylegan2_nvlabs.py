"""NVlabs stylegan2-ada-pytorch generator in plain PyTorch, and its safe pickle loader.

``Generator(z_dim, c_dim, w_dim, img_resolution, img_channels, mapping_kwargs, synthesis_kwargs)``
takes the constructor arguments that NVlabs pickles record (``G_ema.init_kwargs``) and has the same
``state_dict`` keys (``mapping.fc{i}.*``, ``mapping.w_avg``, ``synthesis.b{res}.{const, conv0, conv1,
torgb, resample_filter}``, ...). It follows the inference path of the original (eval mode, fused
modulated convolution, float32; ``num_fp16_res`` is accepted but computed in float32).

It implements the one StyleGAN2 interface, :class:`facecontrol.models.stylegan_interface.StyleGAN2Generator`:
``G.mapping(z, truncation_psi=..., truncation_cutoff=...) -> (B, num_ws, w_dim)`` (labels ``c`` second for
conditional models), ``G.synthesis(ws, noise_mode="const") -> (B, img_channels, R, R)`` in about [-1, 1],
``G.num_ws``, ``G.w_dim``, ``G.z_dim``, ``G.resolution``, ``G.w_avg``, ``truncate``, ``sample_ws``, ``device``.

``load_nvlabs_pkl(path)`` reads a network pickle with :mod:`facecontrol.models.safe_pickle` (never
running the code it carries) and rebuilds ``G_ema`` with this class.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .precision import autocast_context
from .safe_pickle import PersistentObject, load_network_pickle
from .stylegan2 import SQRT2, bias_leaky_relu, broadcast_ws, check_noise_mode, make_fir_kernel, upfirdn2d
from .stylegan_interface import GeneratorOptions, StyleGAN2Generator, run_block

logger = logging.getLogger(__name__)

ACTIVATION_GAINS = {"linear": 1.0, "lrelu": SQRT2}


def bias_act(
    x: torch.Tensor,
    bias: torch.Tensor | None,
    activation: str = "linear",
    gain: float | None = None,
    clamp: float | None = None,
) -> torch.Tensor:
    """Bias (dim 1), activation, gain and optional clamp, as NVlabs' ``bias_act`` reference path."""
    if activation not in ACTIVATION_GAINS:
        raise ValueError(f"unsupported activation {activation!r}; expected one of {sorted(ACTIVATION_GAINS)}")
    gain = ACTIVATION_GAINS[activation] if gain is None else gain
    if activation == "lrelu":
        x = bias_leaky_relu(x, bias, 0.2, gain)
    else:
        if bias is not None:
            x = x + bias.view(1, -1, *([1] * (x.ndim - 2)))
        if gain != 1:
            x = x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


def filter_size(f: torch.Tensor) -> tuple[int, int]:
    return int(f.shape[-1]), int(f.shape[0])


def upsample2d(x: torch.Tensor, f: torch.Tensor, up: int = 2) -> torch.Tensor:
    """2x FIR upsampling that keeps the image aligned (NVlabs ``upsample2d``)."""
    fw, fh = filter_size(f)
    pad = ((fw + up - 1) // 2, (fw - up) // 2, (fh + up - 1) // 2, (fh - up) // 2)
    return upfirdn2d(x, f * (up * up), up=up, pad=pad)


def conv2d_resample(
    x: torch.Tensor,
    w: torch.Tensor,
    f: torch.Tensor | None,
    up: int = 1,
    padding: int = 0,
    groups: int = 1,
    flip_weight: bool = True,
) -> torch.Tensor:
    """Convolution with optional FIR upsampling (transposed conv, then filter), padding once."""
    if up == 1:
        if not flip_weight:
            w = w.flip([2, 3])
        return F.conv2d(x, w, padding=padding, groups=groups)
    out_channels, in_per_group, kh, kw = w.shape
    fw, fh = filter_size(f)
    px0 = padding + (fw + up - 1) // 2 - (kw - 1)
    px1 = padding + (fw - up) // 2 - (kw - up)
    py0 = padding + (fh + up - 1) // 2 - (kh - 1)
    py1 = padding + (fh - up) // 2 - (kh - up)
    w = w.reshape(groups, out_channels // groups, in_per_group, kh, kw).transpose(1, 2)
    w = w.reshape(groups * in_per_group, out_channels // groups, kh, kw)
    if flip_weight:  # as in NVlabs' transposed path: correlation is requested by flipping the taps
        w = w.flip([2, 3])
    pxt = max(min(-px0, -px1), 0)
    pyt = max(min(-py0, -py1), 0)
    x = F.conv_transpose2d(x, w, stride=up, padding=(pyt, pxt), groups=groups)
    return upfirdn2d(x, f * (up * up), pad=(px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt))


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    noise: torch.Tensor | None = None,
    up: int = 1,
    padding: int = 0,
    resample_filter: torch.Tensor | None = None,
    demodulate: bool = True,
    flip_weight: bool = True,
) -> torch.Tensor:
    """Fused modulate/demodulate + grouped convolution (the eval-mode float32 path)."""
    batch = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape
    w = weight.unsqueeze(0) * styles.reshape(batch, 1, -1, 1, 1)
    if demodulate:
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()
        w = w * dcoefs.reshape(batch, -1, 1, 1, 1)
    x = x.reshape(1, -1, *x.shape[2:])
    w = w.reshape(-1, in_channels, kh, kw)
    x = conv2d_resample(
        x, w.to(x.dtype), resample_filter, up=up, padding=padding, groups=batch, flip_weight=flip_weight
    )
    x = x.reshape(batch, -1, *x.shape[2:])
    if noise is not None:
        x = x + noise
    return x


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


class FullyConnectedLayer(nn.Module):
    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        activation: str = "linear",
        lr_multiplier: float = 1.0,
        bias_init: float = 0.0,
    ):
        super().__init__()
        self.activation = activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x.matmul(w.t()), b, activation=self.activation)


class MappingNetwork(nn.Module):
    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        num_ws: int | None,
        num_layers: int = 8,
        embed_features: int | None = None,
        layer_features: int | None = None,
        activation: str = "lrelu",
        lr_multiplier: float = 0.01,
        w_avg_beta: float | None = 0.995,
        freeze_layers: int = 0,
        freeze_embed: bool = False,
    ):
        super().__init__()
        # freeze_layers / freeze_embed (stylegan3's copy) only make layers untrainable; the weights are the same.
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta
        embed_features = 0 if c_dim == 0 else (w_dim if embed_features is None else embed_features)
        layer_features = w_dim if layer_features is None else layer_features
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for idx in range(num_layers):
            layer = FullyConnectedLayer(
                features[idx], features[idx + 1], activation=activation, lr_multiplier=lr_multiplier
            )
            setattr(self, f"fc{idx}", layer)
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
    ) -> torch.Tensor:
        """z ``(B, z_dim)`` (and labels ``c`` when c_dim > 0) -> ``(B, num_ws, w_dim)``."""
        x = normalize_2nd_moment(z.to(torch.float32)) if self.z_dim > 0 else None
        if self.c_dim > 0:
            if not isinstance(c, torch.Tensor):
                raise ValueError(f"this generator is conditional (c_dim={self.c_dim}); pass labels c (B, {self.c_dim})")
            y = normalize_2nd_moment(self.embed(c.to(torch.float32)))
            x = torch.cat([x, y], dim=1) if x is not None else y
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)
        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat([1, self.num_ws, 1])
        if truncation_psi != 1:
            if self.num_ws is None or truncation_cutoff is None:
                x = self.w_avg.lerp(x, truncation_psi)
            else:
                head = self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi)
                x = torch.cat([head, x[:, truncation_cutoff:]], dim=1)
        return x


class SynthesisLayer(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        kernel_size: int = 3,
        up: int = 1,
        use_noise: bool = True,
        activation: str = "lrelu",
        resample_filter: Sequence[float] = (1, 3, 3, 1),
        conv_clamp: float | None = None,
        channels_last: bool = False,
    ):
        super().__init__()
        self.resolution = resolution
        self.up = up
        self.use_noise = use_noise
        self.activation = activation
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", make_fir_kernel(resample_filter))
        self.padding = kernel_size // 2
        self.act_gain = ACTIVATION_GAINS[activation]
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "const", gain: float = 1.0) -> torch.Tensor:
        styles = self.affine(w)
        noise = None
        if self.use_noise and noise_mode == "random":
            noise = (
                torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device) * self.noise_strength
            )
        if self.use_noise and noise_mode == "const":
            noise = self.noise_const * self.noise_strength
        x = modulated_conv2d(
            x,
            self.weight,
            styles,
            noise=noise,
            up=self.up,
            padding=self.padding,
            resample_filter=self.resample_filter,
            flip_weight=(self.up == 1),
        )
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias.to(x.dtype), self.activation, gain=self.act_gain * gain, clamp=clamp)


class ToRGBLayer(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        kernel_size: int = 1,
        conv_clamp: float | None = None,
        channels_last: bool = False,
    ):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False)
        return bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp)


class SynthesisBlock(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        img_channels: int,
        is_last: bool,
        architecture: str = "skip",
        resample_filter: Sequence[float] = (1, 3, 3, 1),
        conv_clamp: float | None = None,
        use_fp16: bool = False,
        fp16_channels_last: bool = False,
        fused_modconv_default: bool | str = True,
        **layer_kwargs: Any,
    ):
        super().__init__()
        # stylegan3's copy of this network records fused_modconv_default ('inference_only' in its train.py):
        # the fused and the per-sample paths compute the same convolution; this class always fuses.
        if fused_modconv_default not in (True, False, "inference_only"):
            raise ValueError(f"unsupported fused_modconv_default {fused_modconv_default!r}")
        if architecture not in ("orig", "skip"):
            raise NotImplementedError(
                f"StyleGAN2 synthesis architecture {architecture!r} is not supported (orig, skip are)"
            )
        self.in_channels = in_channels
        self.w_dim = w_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.is_last = is_last
        self.architecture = architecture
        self.register_buffer("resample_filter", make_fir_kernel(resample_filter))
        self.num_conv = 0
        self.num_torgb = 0
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(
                in_channels,
                out_channels,
                w_dim=w_dim,
                resolution=resolution,
                up=2,
                resample_filter=resample_filter,
                conv_clamp=conv_clamp,
                **layer_kwargs,
            )
            self.num_conv += 1
        self.conv1 = SynthesisLayer(
            out_channels, out_channels, w_dim=w_dim, resolution=resolution, conv_clamp=conv_clamp, **layer_kwargs
        )
        self.num_conv += 1
        if is_last or architecture == "skip":
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp)
            self.num_torgb += 1

    def forward(
        self, x: torch.Tensor | None, img: torch.Tensor | None, ws: torch.Tensor, noise_mode: str = "const"
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        w_iter = iter(ws.unbind(dim=1))
        if self.in_channels == 0:
            x = self.const.to(torch.float32).unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
            x = self.conv1(x, next(w_iter), noise_mode=noise_mode)
        else:
            x = self.conv0(x.to(torch.float32), next(w_iter), noise_mode=noise_mode)
            x = self.conv1(x, next(w_iter), noise_mode=noise_mode)
        if img is not None:
            img = upsample2d(img, self.resample_filter)
        if self.is_last or self.architecture == "skip":
            y = self.torgb(x, next(w_iter)).to(torch.float32)
            img = img + y if img is not None else y
        return x, img


class SynthesisNetwork(nn.Module):
    def __init__(
        self,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        channel_base: int = 32768,
        channel_max: int = 512,
        num_fp16_res: int = 0,
        **block_kwargs: Any,
    ):
        super().__init__()
        if img_resolution < 4 or img_resolution & (img_resolution - 1):
            raise ValueError(f"img_resolution must be a power of two >= 4, got {img_resolution}")
        if num_fp16_res:
            logger.info("num_fp16_res=%d in the pickle; computing in float32", num_fp16_res)
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.block_resolutions = [2**i for i in range(2, int(math.log2(img_resolution)) + 1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}
        self.num_ws = 0
        for res in self.block_resolutions:
            in_channels = channels[res // 2] if res > 4 else 0
            is_last = res == img_resolution
            block = SynthesisBlock(
                in_channels,
                channels[res],
                w_dim=w_dim,
                resolution=res,
                img_channels=img_channels,
                is_last=is_last,
                **block_kwargs,
            )
            self.num_ws += block.num_conv + (block.num_torgb if is_last else 0)
            setattr(self, f"b{res}", block)
        # Replaced by the owning Generator's options (shared, so setting them there reaches here).
        self.options = GeneratorOptions()

    def forward(self, ws: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        """W+ ``(B, num_ws, w_dim)`` (or w ``(B, w_dim)``) -> image ``(B, img_channels, R, R)``."""
        check_noise_mode(noise_mode)
        ws = broadcast_ws(ws, self.num_ws).to(torch.float32)
        x = img = None
        w_idx = 0
        with autocast_context(ws.device, self.options.compute_dtype):
            for res in self.block_resolutions:
                block = getattr(self, f"b{res}")
                block_ws = ws.narrow(1, w_idx, block.num_conv + block.num_torgb)
                w_idx += block.num_conv
                x, img = run_block(self.options, block, x, img, block_ws, noise_mode)
        return img.float()


class Generator(StyleGAN2Generator):
    """stylegan2-ada-pytorch ``Generator`` with identical constructor arguments and state_dict keys."""

    kind = "nvlabs"

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        mapping_kwargs: dict | None = None,
        synthesis_kwargs: dict | None = None,
    ):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.synthesis = SynthesisNetwork(
            w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels, **(synthesis_kwargs or {})
        )
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(
            z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws, **(mapping_kwargs or {})
        )
        self.synthesis.options = self.options

    @property
    def resolution(self) -> int:
        return self.img_resolution

    @property
    def w_avg(self) -> torch.Tensor:
        return self.mapping.w_avg

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: str = "const",
    ) -> torch.Tensor:
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, noise_mode=noise_mode)


GENERATOR_ARGS = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")
# Constructor arguments and state keys only the alias-free StyleGAN3 generator (networks_stylegan3) has.
STYLEGAN3_KWARGS = {
    "magnitude_ema_beta",
    "conv_kernel",
    "num_layers",
    "num_critical",
    "first_cutoff",
    "first_stopband",
    "last_stopband_rel",
    "margin_size",
    "output_scale",
    "filter_size",
    "lrelu_upsampling",
    "use_radial_filters",
}
STYLEGAN3_STATE_PREFIXES = ("synthesis.input.", "synthesis.L0_")


class UnsupportedGeneratorError(ValueError):
    """The pickle holds a generator this reader does not rebuild (StyleGAN3, another architecture)."""


def generator_kwargs(record: PersistentObject) -> dict[str, Any]:
    """``Generator`` arguments from a record of either NVlabs repository.

    stylegan2-ada-pytorch records ``synthesis_kwargs={...}``; stylegan3's ``networks_stylegan2.Generator``
    takes them as ``**synthesis_kwargs``, so its pickles record them flat beside ``z_dim`` (with
    ``fused_modconv_default``). Both become ``synthesis_kwargs`` here.
    """
    names = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs", "synthesis_kwargs")
    kwargs = dict(zip(names, record.init_args))
    kwargs.update(record.init_kwargs)
    synthesis = dict(kwargs.pop("synthesis_kwargs", None) or {})
    mapping = dict(kwargs.pop("mapping_kwargs", None) or {})
    flat = {key: kwargs.pop(key) for key in list(kwargs) if key not in GENERATOR_ARGS}
    synthesis.update(flat)
    return {**kwargs, "mapping_kwargs": mapping, "synthesis_kwargs": synthesis}


def check_stylegan2(record: PersistentObject, kwargs: dict[str, Any]) -> None:
    sg3_kwargs = sorted(STYLEGAN3_KWARGS & set(kwargs["synthesis_kwargs"]))
    sg3_keys = [key for key in record.state_dict() if key.startswith(STYLEGAN3_STATE_PREFIXES)]
    if sg3_kwargs or sg3_keys:
        found = ", ".join(sg3_kwargs) or sg3_keys[0]
        raise UnsupportedGeneratorError(
            f"this is a StyleGAN3 (alias-free, networks_stylegan3) generator ({found}); PIE needs a StyleGAN2 "
            "generator: a stylegan2-ada-pytorch pickle, a stylegan3-repository StyleGAN2 pickle (--cfg=stylegan2) "
            "or a rosinality .pt"
        )


def build_generator(record: PersistentObject) -> Generator:
    """Rebuild a recorded NVlabs ``Generator`` (stylegan2-ada-pytorch or stylegan3's StyleGAN2) and load its state."""
    if record.class_name != "Generator":
        raise UnsupportedGeneratorError(f"expected a persistent 'Generator', got {record.class_name!r}")
    kwargs = generator_kwargs(record)
    check_stylegan2(record, kwargs)
    try:
        generator = Generator(**kwargs)
    except TypeError as error:
        raise UnsupportedGeneratorError(
            f"the pickled Generator's arguments are not StyleGAN2's ({error}); recorded: {sorted(record.init_kwargs)}"
        ) from None
    try:
        generator.load_state_dict(record.state_dict(), strict=True)
    except RuntimeError as error:
        raise UnsupportedGeneratorError(
            "the pickled generator does not match the StyleGAN2 layout (StyleGAN3 and other variants "
            f"are not supported): {error}"
        ) from error
    return generator.eval().requires_grad_(False)


def load_nvlabs_pkl(path: str | Path, key: str = "G_ema") -> Generator:
    """Read ``key`` from an NVlabs network pickle without running its code; returns G with its ``load_info``."""
    data = load_network_pickle(path)
    if not isinstance(data, dict) or not isinstance(data.get(key), PersistentObject):
        found = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{path}: no persistent network {key!r} in the pickle (found {found})")
    record = data[key]
    try:
        generator = build_generator(record)
    except UnsupportedGeneratorError as error:
        raise UnsupportedGeneratorError(f"{path}: {error}") from None
    layout = "stylegan3-repo" if "synthesis_kwargs" not in record.init_kwargs else "stylegan2-ada"
    generator.load_info = {
        "format": "nvlabs",
        "layout": layout,
        "path": str(path),
        "key": key,
        "config": record.init_kwargs,
        "resolution": generator.resolution,
        "num_ws": generator.num_ws,
        "w_dim": generator.w_dim,
        "w_avg_source": "mapping.w_avg",
    }
    return generator
