"""Diffusion Video Autoencoders noise predictor (Kim et al., CVPR 2023).

A BeatGANs/DiffAE autoencoder UNet whose ResBlocks take two conditions: the timestep embedding
modulates the first GroupNorm, then an extra conv + GroupNorm follows, and the face code
z_face (512-d) modulates that second GroupNorm with a scale and a shift. State-dict keys match the
`ema_model.` / `model.` part of the released Lightning checkpoint (minus `encoder.*`).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DVAUNet", "timestep_embedding", "build_dva_unet", "DVA_UNET_DEFAULT_CONFIG"]

DVA_UNET_DEFAULT_CONFIG: dict[str, Any] = {
    "image_size": 256,
    "in_channels": 3,
    "out_channels": 3,
    "model_channels": 128,
    "channel_mult": (1, 1, 2, 2, 4, 4),
    "num_res_blocks": 2,
    "attention_resolutions": (16,),
    "num_heads": 1,
    "num_head_channels": -1,
    "embed_channels": 512,
    "resnet_two_cond": True,
    "resnet_use_zero_module": True,
    "resblock_updown": True,
    "conv_resample": True,
    "dropout": 0.1,
    "use_new_attention_order": False,
}


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding (B, dim) of integer or fractional timesteps, cosines first."""
    half = dim // 2
    exponent = torch.arange(half, dtype=torch.float32, device=timesteps.device) / half
    freqs = torch.exp(-math.log(max_period) * exponent)
    angles = timesteps[:, None].float() * freqs[None]
    embedding = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)
    if dim % 2:
        embedding = torch.cat([embedding, torch.zeros_like(embedding[:, :1])], dim=-1)
    return embedding


class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in float32 whatever the input dtype (as the authors' code does)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).type(x.dtype)


def group_norm(channels: int) -> GroupNorm32:
    return GroupNorm32(min(32, channels), channels)


class ConditionedSequential(nn.Sequential):
    """A sequence whose ResBlocks receive the time embedding, the face code and a skip tensor."""

    def forward(self, x, emb=None, cond=None, lateral=None):  # type: ignore[override]
        for layer in self:
            if isinstance(layer, ResBlock):
                x = layer(x, emb, cond, lateral)
                lateral = None  # only the first ResBlock of a decoder block takes the skip tensor
            else:
                x = layer(x)
        return x


class Downsample(nn.Module):
    def __init__(self, channels: int, use_conv: bool):
        super().__init__()
        if use_conv:
            self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)
        else:
            self.op = nn.AvgPool2d(kernel_size=2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Upsample(nn.Module):
    def __init__(self, channels: int, use_conv: bool):
        super().__init__()
        self.use_conv = use_conv
        if use_conv:
            self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv(x) if self.use_conv else x


class ResBlock(nn.Module):
    """Two-condition ResBlock.

    out path: GN -> *(1+s_t)+b_t -> SiLU -> conv -> GN -> *(1+s_c)+b_c -> SiLU -> Dropout -> conv.
    """

    def __init__(
        self,
        channels: int,
        emb_channels: int,
        dropout: float,
        out_channels: int | None = None,
        cond_channels: int | None = None,
        up: bool = False,
        down: bool = False,
    ):
        super().__init__()
        out_channels = out_channels or channels
        cond_channels = cond_channels or emb_channels
        self.in_layers = nn.Sequential(group_norm(channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1))
        self.updown = up or down
        if up:
            self.h_upd, self.x_upd = Upsample(channels, False), Upsample(channels, False)
        elif down:
            self.h_upd, self.x_upd = Downsample(channels, False), Downsample(channels, False)
        else:
            self.h_upd = self.x_upd = nn.Identity()
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, 2 * out_channels))
        self.cond_emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(cond_channels, 2 * out_channels))
        self.out_layers = nn.Sequential(
            group_norm(out_channels),
            nn.SiLU(),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
            group_norm(out_channels),
            nn.SiLU(),
            nn.Dropout(p=dropout),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
        )
        if out_channels == channels:
            self.skip_connection: nn.Module = nn.Identity()
        else:
            self.skip_connection = nn.Conv2d(channels, out_channels, 1)

    def forward(self, x, emb, cond, lateral=None):
        if lateral is not None:
            x = torch.cat([x, lateral], dim=1)
        h = self._input_path(x)
        if self.updown:
            x = self.x_upd(x)
        h = self._output_path(h, emb, cond)
        return self.skip_connection(x) + h

    def _input_path(self, x: torch.Tensor) -> torch.Tensor:
        norm, act, conv = self.in_layers
        h = act(norm(x))
        return conv(self.h_upd(h))

    def _output_path(self, h, emb, cond):
        layers = self.out_layers
        h = _modulate(layers[0](h), self.emb_layers(emb).type(h.dtype))
        h = layers[3](layers[2](layers[1](h)))
        if cond is not None:
            h = _modulate(h, self.cond_emb_layers(cond).type(h.dtype))
        return layers[6](layers[5](layers[4](h)))


def _modulate(h: torch.Tensor, scale_shift: torch.Tensor) -> torch.Tensor:
    scale, shift = scale_shift[:, :, None, None].chunk(2, dim=1)
    return h * (1 + scale) + shift


class AttentionBlock(nn.Module):
    """Spatial self-attention with the 'legacy' head split (heads before q/k/v)."""

    def __init__(self, channels: int, num_heads: int = 1, num_head_channels: int = -1, new_order: bool = False):
        super().__init__()
        self.num_heads = num_heads if num_head_channels == -1 else channels // num_head_channels
        self.new_order = new_order
        self.norm = group_norm(channels)
        self.qkv = nn.Conv1d(channels, channels * 3, 1)
        self.proj_out = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, *spatial = x.shape
        flat = x.reshape(b, c, -1)
        h = self.proj_out(self._attend(self.qkv(self.norm(flat))))
        return (flat + h).reshape(b, c, *spatial)

    def _attend(self, qkv: torch.Tensor) -> torch.Tensor:
        bs, width, length = qkv.shape
        ch = width // (3 * self.num_heads)
        if self.new_order:
            q, k, v = (t.reshape(bs * self.num_heads, ch, length) for t in qkv.chunk(3, dim=1))
        else:
            q, k, v = qkv.reshape(bs * self.num_heads, ch * 3, length).split(ch, dim=1)
        # softmax(q^T k / sqrt(ch)) v: the authors' einsum form, through the fused kernel
        out = F.scaled_dot_product_attention(
            q.transpose(1, 2)[:, None], k.transpose(1, 2)[:, None], v.transpose(1, 2)[:, None]
        )
        return out[:, 0].transpose(1, 2).reshape(bs, -1, length)


class TimeStyleSeperateEmbed(nn.Module):
    """Time MLP (keys `time_embed.time_embed.{0,2}`); the face code passes through unchanged."""

    def __init__(self, time_channels: int, out_channels: int):
        super().__init__()
        self.time_embed = nn.Sequential(
            nn.Linear(time_channels, out_channels), nn.SiLU(), nn.Linear(out_channels, out_channels)
        )
        self.style = nn.Identity()

    def forward(self, t_emb: torch.Tensor) -> torch.Tensor:
        return self.time_embed(t_emb)


class DVAUNet(nn.Module):
    """DVA noise predictor: `forward(x_t, t, z_face) -> eps`.

    x_t: (B, C, H, W) float; t: (B,) int64 timestep on the ORIGINAL 0..999 scale; z_face: (B, 512).
    Returns eps of the same shape as x_t.
    """

    def __init__(
        self,
        image_size: int = 256,
        in_channels: int = 3,
        out_channels: int = 3,
        model_channels: int = 128,
        channel_mult: Sequence[int] = (1, 1, 2, 2, 4, 4),
        num_res_blocks: int = 2,
        attention_resolutions: Sequence[int] = (16,),
        num_heads: int = 1,
        num_head_channels: int = -1,
        embed_channels: int = 512,
        resnet_two_cond: bool = True,
        resnet_use_zero_module: bool = True,
        resblock_updown: bool = True,
        conv_resample: bool = True,
        dropout: float = 0.1,
        use_new_attention_order: bool = False,
        cond_channels: int | None = None,
    ):
        super().__init__()
        if not resnet_two_cond:
            raise ValueError("DVAUNet only implements the two-condition ResBlocks (resnet_two_cond=True)")
        # resnet_use_zero_module only zero-initialises convs; weights always come from a checkpoint.
        self.model_channels = model_channels
        self.channel_mult = tuple(channel_mult)
        self._block_args = dict(emb_channels=embed_channels, dropout=dropout, cond_channels=cond_channels)
        self._attn_args = dict(
            num_heads=num_heads, num_head_channels=num_head_channels, new_order=use_new_attention_order
        )
        self._attention_resolutions = set(attention_resolutions)
        self._resblock_updown = resblock_updown
        self._conv_resample = conv_resample

        self.time_embed = TimeStyleSeperateEmbed(model_channels, embed_channels)
        skip_channels = self._build_encoder(image_size, in_channels, num_res_blocks)
        ch = skip_channels[-1][-1]
        self.middle_block = ConditionedSequential(
            ResBlock(ch, **self._block_args), AttentionBlock(ch, **self._attn_args), ResBlock(ch, **self._block_args)
        )
        ch = self._build_decoder(image_size // 2 ** (len(self.channel_mult) - 1), ch, skip_channels, num_res_blocks)
        first_ch = int(self.channel_mult[0] * model_channels)
        self.out = nn.Sequential(group_norm(ch), nn.SiLU(), nn.Conv2d(first_ch, out_channels, 3, padding=1))

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "DVAUNet":
        """Build from a config dict (e.g. a fixture's meta config); unknown keys are ignored."""
        names = set(DVA_UNET_DEFAULT_CONFIG) | {"cond_channels"}
        return cls(**{k: v for k, v in config.items() if k in names})

    def _build_encoder(self, resolution: int, in_channels: int, num_res_blocks: int) -> list[list[int]]:
        ch = int(self.channel_mult[0] * self.model_channels)
        self.input_blocks = nn.ModuleList([ConditionedSequential(nn.Conv2d(in_channels, ch, 3, padding=1))])
        self.input_blocks_per_level = [1] + [0] * (len(self.channel_mult) - 1)
        skip_channels: list[list[int]] = [[ch]] + [[] for _ in self.channel_mult[1:]]
        for level, mult in enumerate(self.channel_mult):
            for _ in range(num_res_blocks):
                out_ch = int(mult * self.model_channels)
                layers: list[nn.Module] = [ResBlock(ch, out_channels=out_ch, **self._block_args)]
                ch = out_ch
                if resolution in self._attention_resolutions:
                    layers.append(AttentionBlock(ch, **self._attn_args))
                self.input_blocks.append(ConditionedSequential(*layers))
                skip_channels[level].append(ch)
                self.input_blocks_per_level[level] += 1
            if level != len(self.channel_mult) - 1:
                resolution //= 2
                self.input_blocks.append(ConditionedSequential(self._resample_block(ch, down=True)))
                skip_channels[level + 1].append(ch)
                self.input_blocks_per_level[level + 1] += 1
        return skip_channels

    def _build_decoder(self, resolution: int, ch: int, skip_channels: list[list[int]], num_res_blocks: int) -> int:
        pending = [list(level_channels) for level_channels in skip_channels]
        self.output_blocks = nn.ModuleList()
        self.output_blocks_per_level = [0] * len(self.channel_mult)
        for level in reversed(range(len(self.channel_mult))):
            out_ch = int(self.model_channels * self.channel_mult[level])
            for i in range(num_res_blocks + 1):
                skip_ch = pending[level].pop() if pending[level] else 0
                layers: list[nn.Module] = [ResBlock(ch + skip_ch, out_channels=out_ch, **self._block_args)]
                ch = out_ch
                if resolution in self._attention_resolutions:
                    layers.append(AttentionBlock(ch, **self._attn_args))
                if level and i == num_res_blocks:
                    resolution *= 2
                    layers.append(self._resample_block(ch, down=False))
                self.output_blocks.append(ConditionedSequential(*layers))
                self.output_blocks_per_level[level] += 1
        return ch

    def _resample_block(self, ch: int, down: bool) -> nn.Module:
        if self._resblock_updown:
            return ResBlock(ch, out_channels=ch, up=not down, down=down, **self._block_args)
        return Downsample(ch, self._conv_resample) if down else Upsample(ch, self._conv_resample)

    def forward(self, x: torch.Tensor, t: torch.Tensor, z_face: torch.Tensor | None) -> torch.Tensor:
        emb = self.time_embed(timestep_embedding(t, self.model_channels))
        skips = self._encode(x, emb, z_face)
        h = self.middle_block(skips[-1][-1], emb, z_face)
        h = self._decode(h, emb, z_face, skips)
        return self.out(h)

    def _encode(self, x, emb, cond) -> list[list[torch.Tensor]]:
        skips: list[list[torch.Tensor]] = [[] for _ in self.channel_mult]
        blocks = iter(self.input_blocks)
        h = x
        for level, count in enumerate(self.input_blocks_per_level):
            for _ in range(count):
                h = next(blocks)(h, emb, cond)
                skips[level].append(h)
        return skips

    def _decode(self, h, emb, cond, skips) -> torch.Tensor:
        blocks = iter(self.output_blocks)
        for level in reversed(range(len(self.channel_mult))):
            for _ in range(self.output_blocks_per_level[level]):
                lateral = skips[level].pop() if skips[level] else None
                h = next(blocks)(h, emb, cond, lateral)
        return h


def build_dva_unet(
    state_dict: Mapping[str, torch.Tensor] | None = None,
    config: Mapping[str, Any] | None = None,
    strict: bool = True,
) -> DVAUNet:
    """Build a DVAUNet at `config` (default: the released one) and load `state_dict` if given.

    With a state dict the module is created on the meta device and the tensors are assigned, so
    no time or memory goes into a random initialisation of ~190M parameters.
    """
    config = {**DVA_UNET_DEFAULT_CONFIG, **(config or {})}
    if state_dict is None:
        return DVAUNet.from_config(config).eval()
    with torch.device("meta"):
        model = DVAUNet.from_config(config)
    model.load_state_dict(dict(state_dict), strict=strict, assign=True)
    return model.float().eval()


def unet_config_from_state(state: Mapping[str, torch.Tensor], image_size: int = 256) -> dict[str, Any]:
    """The DVAUNet constructor arguments that produce `state`'s keys and shapes.

    Width, channel multipliers, blocks per level, attention levels and the condition width are read
    from the tensors, so the released 128-channel model and smaller ones in the same layout both load.
    """
    if "input_blocks.0.0.weight" not in state:
        raise ValueError("not a DVA UNet state: 'input_blocks.0.0.weight' is missing")
    model_channels = int(state["input_blocks.0.0.weight"].shape[0])
    output_blocks = sorted({int(k.split(".")[1]) for k in state if k.startswith("output_blocks.")})
    # every level but the top one ends its decoder part with an upsampling ResBlock after index 0
    upsampling = [b for b in output_blocks if any(f"output_blocks.{b}.{j}.in_layers.0.weight" in state for j in (1, 2))]
    levels = len(upsampling) + 1
    num_res_blocks = len(output_blocks) // levels - 1
    channel_mult, attention = [], []
    for level in range(levels):
        first = 1 + level * (num_res_blocks + 1)
        channel_mult.append(int(state[f"input_blocks.{first}.0.out_layers.6.weight"].shape[0]) // model_channels)
        if f"input_blocks.{first}.1.qkv.weight" in state:
            attention.append(image_size // 2**level)
    embed = int(state["time_embed.time_embed.2.weight"].shape[0])
    cond = int(state["input_blocks.1.0.cond_emb_layers.1.weight"].shape[1])
    return {
        "image_size": image_size,
        "model_channels": model_channels,
        "channel_mult": tuple(channel_mult),
        "num_res_blocks": num_res_blocks,
        "attention_resolutions": tuple(attention),
        "embed_channels": embed,
        "cond_channels": cond if cond != embed else None,
    }
