"""What every FaceControl node shares: model folders, model-file resolution, input checks, progress."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch

import comfy.utils
import folder_paths

from .. import model_files

log = logging.getLogger("facecontrol")


def register_model_folders() -> None:
    """Add the pack's folder keys to ComfyUI, keeping paths a user's extra_model_paths.yaml already gave."""
    for key, spec in model_files.MODEL_FOLDERS.items():
        default = os.path.join(folder_paths.models_dir, spec["subfolder"])
        exts = set(spec["extensions"])
        if key in folder_paths.folder_names_and_paths:
            paths, known = folder_paths.folder_names_and_paths[key]
            if default not in paths:
                paths.append(default)
            folder_paths.folder_names_and_paths[key] = (paths, set(known) | exts)
        else:
            folder_paths.folder_names_and_paths[key] = ([default], exts)


def search_folders() -> dict[str, list[Path]]:
    folders = {}
    for key in list(model_files.MODEL_FOLDERS) + list(model_files.COMFY_FOLDERS):
        try:
            folders[key] = [Path(p) for p in folder_paths.get_folder_paths(key)]
        except KeyError:
            folders[key] = []
    return folders


def resolve_model(name: str) -> Path:
    """Path of a manifest entry; raises ModelFileNotFound naming every place searched."""
    return model_files.resolve(name, search_folders())


def folder_file(key: str, name: str, input_name: str) -> Path:
    """A file chosen from a model folder's list; a name that is gone names the folders searched."""
    path = folder_paths.get_full_path(key, name)
    if path is None:
        raise ValueError(f"'{input_name}' {name!r} is not in the {key} model folders {folder_paths.get_folder_paths(key)}")
    return Path(path)


# ---------------------------------------------------------------- IMAGE / MASK checks


def image_to_uint8(image: torch.Tensor, input_name: str) -> np.ndarray:
    """ComfyUI IMAGE (B,H,W,C) float [0,1] -> (B,H,W,3) uint8 RGB, with errors a user can act on."""
    check_image(image, input_name)
    return (image.detach().cpu().clamp(0, 1).numpy() * 255.0 + 0.5).astype(np.uint8)


def check_image(image: torch.Tensor, input_name: str) -> None:
    if not isinstance(image, torch.Tensor) or image.dim() != 4:
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"'{input_name}' must be an IMAGE batch (B,H,W,C); got {shape}")
    if image.shape[0] == 0:
        raise ValueError(f"'{input_name}' is an empty batch (0 frames)")
    channels = image.shape[-1]
    if channels == 1:
        raise ValueError(f"'{input_name}' is grayscale (1 channel); face nodes need RGB: convert it first")
    if channels == 4:
        raise ValueError(f"'{input_name}' is RGBA (4 channels); face nodes need RGB: drop the alpha channel first")
    if channels != 3:
        raise ValueError(f"'{input_name}' has {channels} channels; face nodes need 3 (RGB)")


def uint8_to_image(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(frames)).float() / 255.0


def mask_batch(mask: torch.Tensor, input_name: str) -> np.ndarray:
    """ComfyUI MASK ((B,)H,W) -> (B,H,W) float32."""
    if mask.dim() == 2:
        mask = mask[None]
    if mask.dim() != 3 or mask.shape[0] == 0:
        raise ValueError(f"'{input_name}' must be a MASK (B,H,W); got {tuple(mask.shape)}")
    return mask.detach().cpu().float().numpy()


def check_batch(n: int, m: int, name_n: str, name_m: str) -> None:
    """Per-frame inputs must agree, except that a single item broadcasts."""
    if m not in (1, n):
        raise ValueError(f"'{name_m}' has {m} items but '{name_n}' has {n}: give one per frame, or a single one")


def check_same_frames(frames: np.ndarray, items, image_name: str, items_name: str, what: str = "detected") -> None:
    """FACES or FACE_CROP made on these frames: one per frame (or a single one) and the same frame size."""
    check_batch(len(frames), len(items), image_name, items_name)
    height, width = items.image_size
    if (height, width) != tuple(frames.shape[1:3]):
        raise ValueError(f"'{items_name}' were {what} on {width}x{height} frames but '{image_name}' is "
                         f"{frames.shape[2]}x{frames.shape[1]}")


def images_with_mask(images: dict[str, torch.Tensor], mask: torch.Tensor, mask_name: str = "mask",
                     hint: str = "") -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Check IMAGE batches and a MASK that are combined pixel by pixel; repeat single items to the batch size.

    Returns the images and the (N,H,W) mask, all with N items and the same H, W.
    """
    masks = torch.from_numpy(mask_batch(mask, mask_name))
    for name, image in images.items():
        check_image(image, name)
    n = max([len(masks)] + [len(image) for image in images.values()])
    sizes = {name: tuple(image.shape[1:3]) for name, image in images.items()} | {mask_name: tuple(masks.shape[1:3])}
    for name, item in list(images.items()) + [(mask_name, masks)]:
        check_batch(n, len(item), "the batch", name)
    if len(set(sizes.values())) > 1:
        listed = ", ".join(f"'{name}' {w}x{h}" for name, (h, w) in sizes.items())
        raise ValueError(f"sizes differ: {listed}{hint}")
    repeat = lambda t: t.expand(n, *t.shape[1:]) if len(t) == 1 and n > 1 else t
    return {name: repeat(image.float()) for name, image in images.items()}, repeat(masks)


def progress(total: int) -> Callable[[int], None]:
    """A per-item progress callback; each update is also where ComfyUI's cancel takes effect."""
    bar = comfy.utils.ProgressBar(total)
    return lambda i: bar.update_absolute(i + 1, total)


# ---------------------------------------------------------------- models in ComfyUI's memory manager

_PATCHERS: dict[tuple, object] = {}


def cached_patcher(path: Path, build: Callable[[Path], torch.nn.Module]):
    """One ModelPatcher per (file, modification time, builder), so ComfyUI's memory manager owns the weights."""
    import comfy.model_management as mm
    import comfy.model_patcher

    key = (str(path), os.path.getmtime(path), getattr(build, "__qualname__", repr(build)))
    if key not in _PATCHERS:
        model = build(path).eval().requires_grad_(False)
        _PATCHERS[key] = comfy.model_patcher.ModelPatcher(
            model, load_device=mm.get_torch_device(), offload_device=mm.unet_offload_device())
    return _PATCHERS[key]


def loaded_model(patcher) -> torch.nn.Module:
    """Ask the memory manager to put the patcher's model on the compute device, and return the module."""
    import comfy.model_management as mm

    mm.load_models_gpu([patcher])
    return patcher.model
