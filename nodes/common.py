"""What every FaceControl node shares: model folders, model-file resolution, input checks, progress."""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import comfy.utils
import folder_paths
import numpy as np
import torch

from .. import model_files
from ..face import image as images
from ..face.image import uint8_to_image  # noqa: F401  (the nodes' IMAGE maker)

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
        raise ValueError(
            f"'{input_name}' {name!r} is not in the {key} model folders {folder_paths.get_folder_paths(key)}"
        )
    return Path(path)


# ---------------------------------------------------------------- IMAGE / MASK checks


def image_to_uint8(image: torch.Tensor, input_name: str) -> np.ndarray:
    """ComfyUI IMAGE (B,H,W,C) float [0,1] -> (B,H,W,3) uint8 RGB, with errors a user can act on."""
    check_image(image, input_name)
    return images.image_to_uint8(image)


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
        raise ValueError(
            f"'{items_name}' were {what} on {width}x{height} frames but '{image_name}' is "
            f"{frames.shape[2]}x{frames.shape[1]}"
        )


def images_with_mask(
    images: dict[str, torch.Tensor], mask: torch.Tensor, mask_name: str = "mask", hint: str = ""
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
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


# ---------------------------------------------------------------- progress and cancel


def check_interrupted() -> None:
    """Raise ComfyUI's interrupt if the user cancelled. Called by the pack at every step of every loop: since
    ComfyUI 0.9.2 the progress bar calls its hook (where the check used to happen) at most every 0.1 s and 0.5 %."""
    import comfy.model_management as mm

    mm.throw_exception_if_processing_interrupted()


class Progress:
    """ComfyUI's progress bar over ``total`` steps with a cancel check at every step.

    ``progress(i)`` reports that item ``i`` (0-based) is done; ``progress.update(done, total, preview)`` sets the
    count directly (a loop whose total is known only as it runs, or one that shows a preview image).
    """

    def __init__(self, total: int) -> None:
        self.total = max(1, int(total))
        self.bar = comfy.utils.ProgressBar(self.total)

    def __call__(self, index: int) -> None:
        self.update(index + 1)

    def update(self, done: int, total: int | None = None, preview=None) -> None:
        check_interrupted()
        if total is not None:
            self.total = max(1, int(total))
        self.bar.update_absolute(min(done, self.total), self.total, preview)


def progress(total: int) -> Progress:
    """A per-item progress callback with a cancel check (see :class:`Progress`)."""
    return Progress(total)


# ---------------------------------------------------------------- models in ComfyUI's memory manager


@dataclass
class _CacheEntry:
    stamp: tuple[int, int]
    value: object


class ModelCache:
    """The pack's one registry of loaded models and model data, as ComfyUI keeps one of its own.

    Keyed by resolved file path and builder; an entry whose file changed (modification time or size) is
    dropped and built again, so a replaced file is never served from memory. Networks are wrapped in a
    ModelPatcher, so ComfyUI's memory manager moves and frees them; the cache holds the only strong reference
    (ComfyUI keeps weak ones).
    """

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], _CacheEntry] = {}

    def get(self, path: Path, build: Callable[[Path], object], *, patch: bool):
        path = Path(path).resolve()
        key = (str(path), _builder_key(build) + (":patcher" if patch else ""))
        stamp = _file_stamp(path)
        entry = self._entries.get(key)
        if entry is not None and entry.stamp == stamp:
            return entry.value
        if entry is not None:
            log.info("FaceControl: %s changed on disk; loading it again", path)
        self._entries.pop(key, None)
        value = build(path)
        if patch:
            value = make_patcher(value)
        self._entries[key] = _CacheEntry(stamp, value)
        return value

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


def _file_stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size


def _builder_key(build: Callable) -> str:
    if isinstance(build, functools.partial):
        return f"{_builder_key(build.func)}{build.args}{sorted(build.keywords.items())}"
    return f"{getattr(build, '__module__', '')}.{getattr(build, '__qualname__', repr(build))}"


MODEL_CACHE = ModelCache()


def make_patcher(module: torch.nn.Module):
    """A frozen eval-mode network in a ModelPatcher on ComfyUI's compute and offload devices."""
    import comfy.model_management as mm
    import comfy.model_patcher

    module = module.eval().requires_grad_(False)
    return comfy.model_patcher.ModelPatcher(
        module, load_device=mm.get_torch_device(), offload_device=mm.unet_offload_device()
    )


def cached_patcher(path: Path, build: Callable[[Path], torch.nn.Module]):
    """The network built from ``path`` by ``build``, in a ModelPatcher, loaded once while the file is unchanged."""
    return MODEL_CACHE.get(path, build, patch=True)


def cached_object(path: Path, build: Callable[[Path], object]):
    """Model data or a bundle of patchers built from ``path`` (face models, detectors), kept like a network."""
    return MODEL_CACHE.get(path, build, patch=False)


def load_patchers(patchers) -> None:
    """Bring the patchers' networks fully onto the compute device.

    Full loads only: the pack's plain-PyTorch networks have no per-layer casting, so a partial load (which
    ComfyUI's dynamic VRAM can choose) would leave some weights on the CPU with their inputs on the GPU.
    """
    import comfy.model_management as mm

    mm.load_models_gpu(list(patchers), force_full_load=True)


def loaded_model(patcher) -> torch.nn.Module:
    """Put the patcher's network on the compute device and return the module."""
    load_patchers([patcher])
    return patcher.model


def free_memory(device: torch.device, patcher=None) -> int:
    """Bytes free for work on ``device``: the ModelPatcher's own estimate where ComfyUI has one (0.12+, with
    dynamic VRAM), else ComfyUI's device-wide figure."""
    import comfy.model_management as mm

    if patcher is not None and hasattr(patcher, "get_free_memory"):
        return int(patcher.get_free_memory(device))
    return int(mm.get_free_memory(device))
