"""Face-Adapter's fine-tuned CLIP ViT-H/14 vision tower (the release's vision_encoder/ folder).

A plain nn.Module around transformers' CLIPVisionModel, so ComfyUI's ModelPatcher can own it (it sets
attributes such as `device` that transformers models expose read-only). Its output is the last hidden
state, CLS + patch tokens, before post_layernorm: what Image2Token reads.
"""
from __future__ import annotations

import os

import torch
from torch import nn


class CLIPVisionTower(nn.Module):
    def __init__(self, clip_vision_model: nn.Module) -> None:
        super().__init__()
        self.clip = clip_vision_model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B,3,224,224) CLIP-normalised pixels -> (B, 1 + patches, hidden)."""
        return self.clip(pixel_values=pixel_values).last_hidden_state


def load_clip_vision_tower(folder: str | os.PathLike) -> CLIPVisionTower:
    """A transformers from_pretrained folder (config.json + model.safetensors or pytorch_model.bin), float32, eval."""
    from transformers import CLIPVisionModel

    model = CLIPVisionModel.from_pretrained(os.fspath(folder), torch_dtype=torch.float32)
    return CLIPVisionTower(model).float().eval()
