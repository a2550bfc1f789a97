"""StyleGAN2 generators in plain PyTorch, and one loader for both released layouts.

Two implementations share one interface:

* :class:`Generator` here: the rosinality/stylegan2-pytorch layout (``style.*``, ``input.input``,
  ``conv1.*``, ``to_rgb1.*``, ``convs.*``, ``to_rgbs.*``, ``noises.noise_*``), read from the ``.pt``
  files that ``convert_weight.py`` and ``train.py`` write.
* :class:`facecontrol.models.stylegan2_nvlabs.Generator`: the NVlabs stylegan2-ada-pytorch layout
  (``mapping.*``, ``synthesis.b{res}.*``), read from network pickles by a restricted unpickler.

Both subclass :class:`facecontrol.models.stylegan_interface.StyleGAN2Generator`, the one interface
(``mapping``, ``synthesis``, ``num_ws``, ``w_dim``, ``z_dim``, ``resolution``, ``w_avg``, ``truncate``,
``sample_ws``, ``device``, gradient checkpointing and compute precision); see that module.
``synthesis`` ``noise_mode``: ``"const"`` (the stored noise buffers), ``"random"`` (fresh N(0,1)) or ``"none"``.

``load_stylegan2(path) -> generator`` picks the reader from the file (``.pt``/``.pth``: rosinality, ``.pkl``:
NVlabs, ``.safetensors``: the pack's 3DMM face generator) and returns the generator in eval mode on CPU,
float32, with ``load_info`` (``format``, ``config``, ``resolution``, ``num_ws``, ``w_dim``, ``w_avg_source``).

All resampling runs through :func:`upfirdn2d`, a plain-PyTorch FIR up/filter/down, with the filter
taken from the state dict (released files carry the filters as buffers).
"""

from __future__ import annotations

import argparse
import logging
import math
import random
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .checkpoint import torch_load_weights
from .precision import autocast_context
from .stylegan_interface import StyleGAN2Generator, run_block

logger = logging.getLogger(__name__)

NOISE_MODES = ("const", "random", "none")
SQRT2 = math.sqrt(2.0)


# ----------------------------------------------------------------------------- shared ops


def upfirdn2d(
    x: torch.Tensor, kernel: torch.Tensor, up: int = 1, down: int = 1, pad: Sequence[int] = (0, 0, 0, 0)
) -> torch.Tensor:
    """Upsample by zero insertion, pad (``x0, x1, y0, y1``; negative crops), convolve, downsample.

    ``kernel`` is ``(kh, kw)``; it is applied as a true convolution (flipped), as both reference
    implementations do, which matters for non-symmetric filters.
    """
    batch, channels, height, width = x.shape
    pad_x0, pad_x1, pad_y0, pad_y1 = pad
    out = x.reshape(batch * channels, 1, height, 1, width, 1)
    out = F.pad(out, [0, up - 1, 0, 0, 0, up - 1])
    out = out.reshape(batch * channels, 1, height * up, width * up)
    out = F.pad(out, [max(pad_x0, 0), max(pad_x1, 0), max(pad_y0, 0), max(pad_y1, 0)])
    out = out[
        :,
        :,
        max(-pad_y0, 0) : out.shape[2] - max(-pad_y1, 0),
        max(-pad_x0, 0) : out.shape[3] - max(-pad_x1, 0),
    ]
    weight = torch.flip(kernel, [0, 1]).to(out.dtype)[None, None]
    out = F.conv2d(out, weight)
    out = out[:, :, ::down, ::down]
    return out.reshape(batch, channels, out.shape[2], out.shape[3])


def bias_leaky_relu(
    x: torch.Tensor, bias: torch.Tensor | None = None, negative_slope: float = 0.2, gain: float = SQRT2
) -> torch.Tensor:
    """Add a per-channel bias (dim 1), leaky ReLU, multiply by ``gain`` (StyleGAN's fused_lrelu)."""
    if bias is not None:
        x = x + bias.view(1, -1, *([1] * (x.ndim - 2)))
    return F.leaky_relu(x, negative_slope) * gain


def make_fir_kernel(taps: Sequence[float]) -> torch.Tensor:
    """Normalised 2-D FIR kernel (outer product of ``taps``), the value released files store."""
    kernel = torch.tensor(taps, dtype=torch.float32)
    if kernel.ndim == 1:
        kernel = kernel[None, :] * kernel[:, None]
    return kernel / kernel.sum()


def check_noise_mode(noise_mode: str) -> None:
    if noise_mode not in NOISE_MODES:
        raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")


def broadcast_ws(ws: torch.Tensor, num_ws: int) -> torch.Tensor:
    """Accept w ``(B, D)`` or W+ ``(B, num_ws, D)``; return W+."""
    if ws.ndim == 2:
        return ws.unsqueeze(1).repeat(1, num_ws, 1)
    if ws.ndim != 3 or ws.shape[1] != num_ws:
        raise ValueError(f"expected ws of shape (B, {num_ws}, w_dim) or (B, w_dim), got {tuple(ws.shape)}")
    return ws


# ----------------------------------------------------------------------------- rosinality layers


class PixelNorm(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(torch.mean(x**2, dim=1, keepdim=True) + 1e-8)


class EqualLinear(nn.Module):
    """Linear layer with run-time weight scaling (equalised learning rate) and lr multiplier."""

    def __init__(
        self, in_dim: int, out_dim: int, bias_init: float = 0.0, lr_mul: float = 1.0, activation: bool = False
    ):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim).div_(lr_mul))
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.activation = activation
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.activation:
            return bias_leaky_relu(F.linear(x, self.weight * self.scale), self.bias * self.lr_mul)
        return F.linear(x, self.weight * self.scale, bias=self.bias * self.lr_mul)


class Blur(nn.Module):
    def __init__(self, taps: Sequence[float], pad: tuple[int, int], upsample_factor: int = 1):
        super().__init__()
        self.register_buffer("kernel", make_fir_kernel(taps) * upsample_factor**2)
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, pad=(self.pad[0], self.pad[1], self.pad[0], self.pad[1]))


class Upsample(nn.Module):
    def __init__(self, taps: Sequence[float], factor: int = 2):
        super().__init__()
        self.factor = factor
        self.register_buffer("kernel", make_fir_kernel(taps) * factor**2)
        slack = len(taps) - factor
        self.pad = ((slack + 1) // 2 + factor - 1, slack // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad0, pad1 = self.pad
        return upfirdn2d(x, self.kernel, up=self.factor, pad=(pad0, pad1, pad0, pad1))


class ModulatedConv2d(nn.Module):
    """Style-modulated convolution (fused grouped form), optional 2x transposed-conv upsampling."""

    def __init__(
        self,
        in_channel: int,
        out_channel: int,
        kernel_size: int,
        style_dim: int,
        demodulate: bool = True,
        upsample: bool = False,
        blur_kernel: Sequence[float] = (1, 3, 3, 1),
    ):
        super().__init__()
        self.in_channel = in_channel
        self.out_channel = out_channel
        self.kernel_size = kernel_size
        self.upsample = upsample
        self.demodulate = demodulate
        if upsample:
            factor = 2
            slack = (len(blur_kernel) - factor) - (kernel_size - 1)
            self.blur = Blur(blur_kernel, pad=((slack + 1) // 2 + factor - 1, slack // 2 + 1), upsample_factor=factor)
        self.scale = 1 / math.sqrt(in_channel * kernel_size**2)
        self.padding = kernel_size // 2
        self.weight = nn.Parameter(torch.randn(1, out_channel, in_channel, kernel_size, kernel_size))
        self.modulation = EqualLinear(style_dim, in_channel, bias_init=1)

    def modulated_weight(self, style: torch.Tensor) -> torch.Tensor:
        batch = style.shape[0]
        style = self.modulation(style).view(batch, 1, self.in_channel, 1, 1)
        weight = self.scale * self.weight * style
        if self.demodulate:
            demod = torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + 1e-8)
            weight = weight * demod.view(batch, self.out_channel, 1, 1, 1)
        return weight

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = x.shape
        weight = self.modulated_weight(style)
        k = self.kernel_size
        grouped = x.reshape(1, batch * self.in_channel, height, width)
        if self.upsample:
            weight = weight.transpose(1, 2).reshape(batch * self.in_channel, self.out_channel, k, k)
            out = F.conv_transpose2d(grouped, weight, padding=0, stride=2, groups=batch)
            out = out.reshape(batch, self.out_channel, out.shape[2], out.shape[3])
            return self.blur(out)
        weight = weight.reshape(batch * self.out_channel, self.in_channel, k, k)
        out = F.conv2d(grouped, weight, padding=self.padding, groups=batch)
        return out.reshape(batch, self.out_channel, out.shape[2], out.shape[3])


class NoiseInjection(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        if noise is None:
            noise = x.new_empty(x.shape[0], 1, x.shape[2], x.shape[3]).normal_()
        return x + self.weight * noise


class FusedLeakyReLU(nn.Module):
    def __init__(self, channel: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channel))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return bias_leaky_relu(x, self.bias)


class ConstantInput(nn.Module):
    def __init__(self, channel: int, size: int = 4):
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channel, size, size))

    def forward(self, batch: int) -> torch.Tensor:
        return self.input.repeat(batch, 1, 1, 1)


class StyledConv(nn.Module):
    def __init__(
        self,
        in_channel: int,
        out_channel: int,
        kernel_size: int,
        style_dim: int,
        upsample: bool = False,
        blur_kernel: Sequence[float] = (1, 3, 3, 1),
    ):
        super().__init__()
        self.conv = ModulatedConv2d(
            in_channel, out_channel, kernel_size, style_dim, upsample=upsample, blur_kernel=blur_kernel
        )
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_channel)

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        return self.activate(self.noise(self.conv(x, style), noise=noise))


class ToRGB(nn.Module):
    def __init__(
        self, in_channel: int, style_dim: int, upsample: bool = True, blur_kernel: Sequence[float] = (1, 3, 3, 1)
    ):
        super().__init__()
        if upsample:
            self.upsample = Upsample(blur_kernel)
        self.conv = ModulatedConv2d(in_channel, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.conv(x, style) + self.bias
        if skip is not None:
            out = out + self.upsample(skip)
        return out


# ----------------------------------------------------------------------------- rosinality generator


def rosinality_channels(channel_multiplier: int) -> dict[int, int]:
    cm = channel_multiplier
    return {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * cm, 128: 128 * cm, 256: 64 * cm, 512: 32 * cm, 1024: 16 * cm}


class Generator(StyleGAN2Generator):
    """rosinality StyleGAN2 generator; ``state_dict`` keys equal the ``g_ema`` entry of released ``.pt`` files."""

    kind = "rosinality"

    def __init__(
        self,
        size: int,
        style_dim: int = 512,
        n_mlp: int = 8,
        channel_multiplier: int = 2,
        blur_kernel: Sequence[float] = (1, 3, 3, 1),
        lr_mlp: float = 0.01,
    ):
        super().__init__()
        channels = rosinality_channels(channel_multiplier)
        if size not in channels or size < 4:
            raise ValueError(f"unsupported StyleGAN2 size {size}; expected one of {sorted(channels)}")
        self.size = size
        self.style_dim = style_dim
        mapping_layers = [EqualLinear(style_dim, style_dim, lr_mul=lr_mlp, activation=True) for _ in range(n_mlp)]
        self.style = nn.Sequential(PixelNorm(), *mapping_layers)
        self.input = ConstantInput(channels[4])
        self.conv1 = StyledConv(channels[4], channels[4], 3, style_dim, blur_kernel=blur_kernel)
        self.to_rgb1 = ToRGB(channels[4], style_dim, upsample=False)
        self.log_size = int(math.log2(size))
        self.num_layers = (self.log_size - 2) * 2 + 1
        self.convs = nn.ModuleList()
        self.upsamples = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        self.noises = nn.Module()
        for layer_idx in range(self.num_layers):
            res = 2 ** ((layer_idx + 5) // 2)
            self.noises.register_buffer(f"noise_{layer_idx}", torch.randn(1, 1, res, res))
        in_channel = channels[4]
        for log_res in range(3, self.log_size + 1):
            out_channel = channels[2**log_res]
            self.convs.append(StyledConv(in_channel, out_channel, 3, style_dim, upsample=True, blur_kernel=blur_kernel))
            self.convs.append(StyledConv(out_channel, out_channel, 3, style_dim, blur_kernel=blur_kernel))
            self.to_rgbs.append(ToRGB(out_channel, style_dim, blur_kernel=blur_kernel))
            in_channel = out_channel
        self.n_latent = self.log_size * 2 - 2
        # Not part of g_ema's state: released files keep latent_avg beside it.
        self.register_buffer("w_avg", torch.zeros(style_dim), persistent=False)

    # common interface ---------------------------------------------------------

    @property
    def num_ws(self) -> int:
        return self.n_latent

    @property
    def w_dim(self) -> int:
        return self.style_dim

    @property
    def z_dim(self) -> int:
        return self.style_dim

    @property
    def resolution(self) -> int:
        return self.size

    def mapping(
        self, z: torch.Tensor, truncation_psi: float = 1.0, truncation_cutoff: int | None = None
    ) -> torch.Tensor:
        """z ``(B, style_dim)`` -> W+ ``(B, num_ws, style_dim)``, optionally truncated towards ``w_avg``."""
        ws = self.style(z).unsqueeze(1).repeat(1, self.n_latent, 1)
        return self.truncate(ws, truncation_psi, truncation_cutoff)

    def synthesis(
        self, ws: torch.Tensor, noise_mode: str = "const", noise: Sequence[torch.Tensor] | None = None
    ) -> torch.Tensor:
        """W+ ``(B, num_ws, style_dim)`` (or w ``(B, style_dim)``) -> image ``(B, 3, size, size)``."""
        ws = broadcast_ws(ws, self.n_latent)
        if noise is None:
            noise = self.noise_inputs(noise_mode, ws.shape[0])
        return self.synthesize(ws, noise)

    def noise_inputs(self, noise_mode: str, batch: int = 1) -> list[torch.Tensor | None]:
        """Per-layer noise: the stored buffers (const), None = fresh per call (random), or zeros (none)."""
        check_noise_mode(noise_mode)
        stored = [getattr(self.noises, f"noise_{i}") for i in range(self.num_layers)]
        if noise_mode == "const":
            return stored
        if noise_mode == "random":
            return [None] * self.num_layers
        return [torch.zeros_like(buf) for buf in stored]

    def make_noise(self) -> list[torch.Tensor]:
        """Fresh N(0,1) noise maps, one per layer, shaped like the stored buffers."""
        return [torch.randn_like(getattr(self.noises, f"noise_{i}")) for i in range(self.num_layers)]

    @torch.no_grad()
    def mean_latent(self, n_latent: int = 4096, seed: int = 0) -> torch.Tensor:
        """Mean of the mapping output over ``n_latent`` seeded z: ``(1, style_dim)``."""
        generator = torch.Generator(device="cpu").manual_seed(seed)
        z = torch.randn(n_latent, self.style_dim, generator=generator).to(self.input.input.device)
        return self.style(z).mean(0, keepdim=True)

    # rosinality API -------------------------------------------------------------

    def get_latent(self, z: torch.Tensor) -> torch.Tensor:
        return self.style(z)

    def forward(
        self,
        styles: Sequence[torch.Tensor],
        return_latents: bool = False,
        inject_index: int | None = None,
        truncation: float = 1.0,
        truncation_latent: torch.Tensor | None = None,
        input_is_latent: bool = False,
        noise: Sequence[torch.Tensor | None] | None = None,
        randomize_noise: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """rosinality call convention: ``g([z])`` or ``g([w_plus], input_is_latent=True)``.

        Returns ``(image, latent)``, latent being None unless ``return_latents``.
        """
        if not input_is_latent:
            styles = [self.style(s) for s in styles]
        if noise is None:
            noise = self.noise_inputs("random" if randomize_noise else "const")
        if truncation < 1:
            latent_avg = self.w_avg if truncation_latent is None else truncation_latent
            styles = [latent_avg + truncation * (s - latent_avg) for s in styles]
        latent = self.styles_to_latent(styles, inject_index)
        image = self.synthesize(latent, noise)
        return image, (latent if return_latents else None)

    def styles_to_latent(self, styles: Sequence[torch.Tensor], inject_index: int | None) -> torch.Tensor:
        if len(styles) < 2:
            first = styles[0]
            return first if first.ndim == 3 else first.unsqueeze(1).repeat(1, self.n_latent, 1)
        if inject_index is None:
            inject_index = random.randint(1, self.n_latent - 1)
        head = styles[0].unsqueeze(1).repeat(1, inject_index, 1)
        tail = styles[1].unsqueeze(1).repeat(1, self.n_latent - inject_index, 1)
        return torch.cat([head, tail], 1)

    def synthesize(self, latent: torch.Tensor, noise: Sequence[torch.Tensor | None]) -> torch.Tensor:
        """The synthesis layers in ``compute_dtype``, one checkpointable block per resolution; float32 out."""
        with autocast_context(latent.device, self.compute_dtype):
            out = self.input(latent.shape[0])
            out = self.conv1(out, latent[:, 0], noise=noise[0])
            skip = self.to_rgb1(out, latent[:, 1])
            for index in range(len(self.to_rgbs)):
                i = 1 + 2 * index
                out, skip = run_block(
                    self.options, self._block, index, out, skip, latent[:, i : i + 3], noise[i], noise[i + 1]
                )
        return skip.float()

    def _block(
        self,
        index: int,
        out: torch.Tensor,
        skip: torch.Tensor,
        styles: torch.Tensor,
        noise1: torch.Tensor | None,
        noise2: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.convs[2 * index](out, styles[:, 0], noise=noise1)
        out = self.convs[2 * index + 1](out, styles[:, 1], noise=noise2)
        return out, self.to_rgbs[index](out, styles[:, 2], skip)


# ----------------------------------------------------------------------------- loaders


def infer_rosinality_config(state: dict[str, torch.Tensor]) -> dict[str, int]:
    """Constructor arguments of :class:`Generator` from a ``g_ema`` state dict."""
    if "input.input" not in state or "style.1.weight" not in state:
        raise ValueError("not a rosinality StyleGAN2 generator state: 'input.input' / 'style.1.weight' missing")
    n_mlp = sum(1 for key in state if key.startswith("style.") and key.endswith(".weight"))
    num_to_rgbs = len({key.split(".")[1] for key in state if key.startswith("to_rgbs.")})
    size = 2 ** (num_to_rgbs + 2)
    channel_multiplier = 2
    if "to_rgbs.3.conv.weight" in state:  # the 64 px layer has 256 * channel_multiplier channels
        channel_multiplier = state["to_rgbs.3.conv.weight"].shape[2] // 256
    style_dim = state["style.1.weight"].shape[1]
    return {"size": size, "style_dim": style_dim, "n_mlp": n_mlp, "channel_multiplier": channel_multiplier}


def read_rosinality_checkpoint(path: str | Path) -> dict[str, Any]:
    """``torch.load`` with ``weights_only=True``; train.py checkpoints also hold an argparse.Namespace."""
    checkpoint = torch_load_weights(path, [argparse.Namespace])
    if not isinstance(checkpoint, dict):
        raise ValueError(f"{path}: expected a dict with 'g_ema', got {type(checkpoint).__name__}")
    return checkpoint


def build_rosinality_generator(checkpoint: dict[str, Any]) -> Generator:
    """Generator from ``{"g_ema": state, "latent_avg": ...}`` (or a bare ``g_ema`` state dict)."""
    state = checkpoint.get("g_ema", checkpoint)
    config = infer_rosinality_config(state)
    generator = Generator(**config)
    generator.load_state_dict(state, strict=True)
    generator.eval().requires_grad_(False)
    latent_avg = checkpoint.get("latent_avg")
    if latent_avg is not None:
        generator.w_avg.copy_(torch.as_tensor(latent_avg, dtype=torch.float32).reshape(-1)[-generator.style_dim :])
        source = "latent_avg"
    else:
        logger.info("no latent_avg in the checkpoint; estimating w_avg from 4096 mapped z")
        generator.w_avg.copy_(generator.mean_latent(4096)[0])
        source = "estimated"
    generator.load_info = {
        "format": "rosinality",
        "config": config,
        "resolution": generator.resolution,
        "num_ws": generator.num_ws,
        "w_dim": generator.w_dim,
        "w_avg_source": source,
    }
    return generator


def load_rosinality(path: str | Path) -> Generator:
    generator = build_rosinality_generator(read_rosinality_checkpoint(path))
    generator.load_info["path"] = str(path)
    return generator


def load_stylegan2(path: str | Path) -> StyleGAN2Generator:
    """Load a rosinality ``.pt``/``.pth``, an NVlabs ``.pkl`` or a face generator ``.safetensors``; see the
    module docstring."""
    # Imported here: the NVlabs and face-generator modules import the shared ops and interface from this one.
    from .face_generator import is_face_generator_file, load_face_generator

    suffix = Path(path).suffix.lower()
    if suffix in (".pt", ".pth"):
        return load_rosinality(path)
    if suffix == ".pkl":
        from .stylegan2_nvlabs import load_nvlabs_pkl

        return load_nvlabs_pkl(path)
    if is_face_generator_file(path):
        return load_face_generator(path)
    raise ValueError(
        f"{path}: unknown StyleGAN2 file type {suffix!r}; expected a rosinality .pt, an NVlabs .pkl or a face "
        "generator .safetensors (scripts/make_face_generator.py)"
    )
