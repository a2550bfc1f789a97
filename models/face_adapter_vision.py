"""Face-Adapter's fine-tuned CLIP ViT-H/14 vision tower (the release's vision_encoder/ folder).

A plain nn.Module around transformers' CLIPVisionModel, so ComfyUI's ModelPatcher can own it (it sets
attributes such as `device` that transformers models expose read-only). Its output is the last hidden
state, CLS + patch tokens, before post_layernorm: what Image2Token reads.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn

from .checkpoint import ModelFileError, reading_model_file


class CLIPVisionTower(nn.Module):
    def __init__(self, clip_vision_model: nn.Module) -> None:
        super().__init__()
        self.clip = clip_vision_model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B,3,224,224) CLIP-normalised pixels -> (B, 1 + patches, hidden)."""
        return self.clip(pixel_values=pixel_values).last_hidden_state


def check_plain_transformers_folder(folder: str | os.PathLike) -> Path:
    """The folder's config.json, refusing one that asks for custom code (``auto_map``): transformers would
    import Python files from the folder for it under trust_remote_code, which the pack never sets."""
    config_path = Path(folder) / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path} not found (the vision_encoder/ folder of the Face-Adapter release)")
    with reading_model_file(config_path, "JSON config"):
        config = json.loads(config_path.read_text(encoding="utf-8"))
    if not isinstance(config, dict):
        raise ModelFileError(f"{config_path} is not a transformers config (a JSON object)")
    custom = [key for key in ("auto_map", "custom_pipelines") if key in config]
    code = sorted(p.name for p in Path(folder).glob("*.py"))
    if custom or code:
        raise ModelFileError(
            f"{config_path} asks for custom code ({', '.join(custom + code)}); the pack never runs "
            "code from a model folder. Use the release's vision_encoder/ folder as it is."
        )
    return config_path


def load_clip_vision_tower(folder: str | os.PathLike) -> CLIPVisionTower:
    """A transformers from_pretrained folder (config.json + model.safetensors or pytorch_model.bin), float32, eval.

    Only local files, no remote code; a .bin is read weights-only by transformers."""
    from transformers import CLIPVisionModel

    check_plain_transformers_folder(folder)
    with reading_model_file(folder, "transformers folder"):
        model = CLIPVisionModel.from_pretrained(
            os.fspath(folder), torch_dtype=torch.float32, local_files_only=True, trust_remote_code=False
        )
    return CLIPVisionTower(model).float().eval()
