"""Face-Adapter token mappers: ID2Token (identity tokens) and Image2Token (attribute tokens).

Both project each input token to the text width, then let 77 learned queries attend to the
projected tokens through a post-norm transformer decoder. State-dict keys match the released
`net_id2token.pth` (bfloat16) and `net_image2token.pth` (float32) files.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Literal

import torch
from torch import nn

from .checkpoint import StateSource, read_state_dict

logger = logging.getLogger(__name__)

MapperKind = Literal["id2token", "image2token"]

HEAD_WIDTH = 64


def build_token_decoder(width: int, num_layers: int, dropout: float = 0.1) -> nn.TransformerDecoder:
    """Post-norm ReLU decoder, feed-forward 2048 (torch's default), no final norm."""
    layer = nn.TransformerDecoderLayer(
        d_model=width,
        nhead=width // HEAD_WIDTH,
        dim_feedforward=2048,
        dropout=dropout,
        activation="relu",
        batch_first=True,
        norm_first=False,
    )
    return nn.TransformerDecoder(layer, num_layers=num_layers, norm=None)


def decode_tokens(query: torch.Tensor, memory: torch.Tensor, decoder: nn.TransformerDecoder) -> torch.Tensor:
    return decoder(query.expand(memory.shape[0], -1, -1), memory)


class _QueryTokenMapper(nn.Module):
    """Shared body; subclasses name the projection and the decoder as the released files do."""

    proj_name: str
    decoder_name: str

    def __init__(self, in_dim: int, text_hidden_size: int, max_length: int, num_layers: int, dropout: float) -> None:
        super().__init__()
        self.text_hidden_size = text_hidden_size
        setattr(self, self.proj_name, nn.Linear(in_dim, text_hidden_size))
        if num_layers > 0:
            self.query = nn.Parameter(torch.zeros(1, max_length, text_hidden_size))
            setattr(self, self.decoder_name, build_token_decoder(text_hidden_size, num_layers, dropout))
        else:
            self.query = None
            setattr(self, self.decoder_name, None)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(B, N, in_dim) or (B, in_dim) -> (B, max_length, text_hidden_size)."""
        batch = features.shape[0]
        memory = getattr(self, self.proj_name)(features).reshape(batch, -1, self.text_hidden_size)
        decoder = getattr(self, self.decoder_name)
        if decoder is None:
            return memory
        return decode_tokens(self.query, memory, decoder)


class ID2Token(_QueryTokenMapper):
    """iresnet100 layer4 tokens (B, 64, 512) -> UNet context (B, 77, 768)."""

    proj_name = "id_proj"
    decoder_name = "id2t"

    def __init__(
        self,
        id_dim: int = 512,
        text_hidden_size: int = 768,
        max_length: int = 77,
        num_layers: int = 3,
        dropout: float = 0.1,
    ) -> None:
        super().__init__(id_dim, text_hidden_size, max_length, num_layers, dropout)


class Image2Token(_QueryTokenMapper):
    """CLIP ViT-H last_hidden_state (B, 257, 1280) -> ControlNet context (B, 77, 768)."""

    proj_name = "visual_proj"
    decoder_name = "i2t"

    def __init__(
        self,
        visual_hidden_size: int = 1280,
        text_hidden_size: int = 768,
        max_length: int = 77,
        num_layers: int = 3,
        dropout: float = 0.1,
    ) -> None:
        super().__init__(visual_hidden_size, text_hidden_size, max_length, num_layers, dropout)


MAPPER_CLASSES: dict[str, type[_QueryTokenMapper]] = {"id2token": ID2Token, "image2token": Image2Token}


def detect_mapper_kind(state: Mapping[str, torch.Tensor]) -> MapperKind:
    for kind, cls in MAPPER_CLASSES.items():
        if f"{cls.proj_name}.weight" in state:
            return kind  # type: ignore[return-value]
    raise ValueError("not a Face-Adapter token mapper: neither 'id_proj.weight' nor 'visual_proj.weight' found")


def mapper_config(state: Mapping[str, torch.Tensor], kind: MapperKind) -> dict[str, int]:
    """Constructor arguments read from the tensor shapes, so other sizes load too."""
    cls = MAPPER_CLASSES[kind]
    text_hidden_size, in_dim = state[f"{cls.proj_name}.weight"].shape
    prefix = f"{cls.decoder_name}.layers."
    layer_ids = {key[len(prefix) :].split(".", 1)[0] for key in state if key.startswith(prefix)}
    max_length = state["query"].shape[1] if "query" in state else 77
    in_name = "id_dim" if kind == "id2token" else "visual_hidden_size"
    return {
        in_name: int(in_dim),
        "text_hidden_size": int(text_hidden_size),
        "max_length": int(max_length),
        "num_layers": len(layer_ids),
    }


def load_token_mapper(source: StateSource, kind: MapperKind | None = None) -> _QueryTokenMapper:
    """Build ID2Token / Image2Token from a path or state dict, strict keys, float32, eval mode.

    bfloat16 or float16 files (the released net_id2token.pth is bf16) are cast to float32.
    `kind` is "id2token" or "image2token"; None detects it from the keys.
    """
    state = read_state_dict(source)
    found = detect_mapper_kind(state)
    if kind is not None and kind != found:
        raise ValueError(f"expected a {kind} state dict, but its keys are those of {found}")
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    module = MAPPER_CLASSES[found](**mapper_config(state, found))
    module.load_state_dict(state, strict=True)
    logger.debug("loaded %s with %d tensors", found, len(state))
    return module.float().eval()
