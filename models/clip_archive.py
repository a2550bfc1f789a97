"""OpenAI CLIP from its released file without running any of the file's code.

OpenAI's ``ViT-B-16.pt`` is a TorchScript archive: a zip holding ``<name>/data.pkl`` (the module tree:
each module an object of a ``__torch__.*`` class whose state is its attribute dict, tensors rebuilt from
persistent storage ids), ``<name>/data/<key>`` (the raw bytes of each storage), ``<name>/code/`` (the
TorchScript source that ``torch.jit.load`` compiles and runs, including any ``__setstate__``) and a few
small records. :func:`read_torchscript_tensors` reads only ``data.pkl``, after the bounds scan of
:mod:`.safe_pickle`, with an unpickler that resolves nothing but tensor rebuilding and inert records for
the module classes, and the storage records it names. ``code/`` is never opened. A module that restores
itself with its own ``__setstate__`` (its state is not an attribute dict) is refused, since its tensors
are whatever that code would make of them.

The same weights in open_clip's form (``.safetensors`` or a torch state dict with the same keys) load
too. :func:`build_openai_clip` builds open_clip's ``CLIP`` (QuickGELU, float32) from the tensors, the
architecture read from their shapes.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .checkpoint import REDOWNLOAD, ModelFileError, read_safetensors, strip_prefix, torch_load_weights
from .safe_pickle import DEFAULT_LIMITS, DamagedPickleError, PickleLimits, UnsafePickleError, check_pickle_bounds

logger = logging.getLogger(__name__)

# tensors OpenAI's file carries beside the weights (model metadata, TorchScript-only attributes)
NON_WEIGHT_KEYS = ("input_resolution", "context_length", "vocab_size")

_STORAGE_DTYPES = {
    "FloatStorage": torch.float32,
    "HalfStorage": torch.float16,
    "DoubleStorage": torch.float64,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}


class ScriptObjectRecord:
    """An inert stand-in for one ``__torch__.*`` object of the archive: its class name and attribute dict."""

    script_class = "?"

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise UnsafePickleError(
                f"module {self.script_class} restores itself with its own __setstate__ code (its pickled state "
                f"is a {type(state).__name__}, not an attribute dict); refusing it, nothing of it was run"
            )
        self.state = state


class _StorageType:
    def __init__(self, name: str, dtype: torch.dtype):
        self.name, self.dtype = name, dtype


def _identity(value: Any, *_: Any) -> Any:
    return value


class _TorchScriptUnpickler(pickle.Unpickler):
    """Unpickles a TorchScript ``data.pkl``: tensors and inert module records, nothing else."""

    _record_classes: dict[str, type] = {}

    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str, archive_size: int):
        super().__init__(io.BytesIO(data))
        self.archive, self.prefix, self.archive_size = archive, prefix, archive_size
        self.storages: dict[str, torch.Tensor] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "__torch__" or module.startswith("__torch__."):
            return self._record_class(f"{module}.{name}")
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name, _STORAGE_DTYPES[name])
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if module == "torch.jit._pickle" and name in (
            "build_intlist",
            "build_doublelist",
            "build_boollist",
            "build_tensorlist",
            "restore_type_tag",
        ):
            return _identity
        raise UnsafePickleError(
            f"refusing to load global {module}.{name}: it is not on the allow-list of the "
            "TorchScript tensor reader (nothing of it was run)"
        )

    def _record_class(self, qualified: str) -> type:
        if qualified not in self._record_classes:
            self._record_classes[qualified] = type(
                "ScriptObjectRecord", (ScriptObjectRecord,), {"script_class": qualified}
            )
        return self._record_classes[qualified]

    def persistent_load(self, pid: Any) -> torch.Tensor:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise UnsafePickleError(f"refusing persistent id {pid!r}: not a tensor storage record")
        _, storage_type, key, _location, numel = pid
        if key not in self.storages:
            self.storages[key] = self._read_storage(str(key), storage_type.dtype, numel)
        return self.storages[key]

    def _read_storage(self, key: str, dtype: torch.dtype, numel: Any) -> torch.Tensor:
        name = f"{self.prefix}data/{key}"
        try:
            info = self.archive.getinfo(name)
        except KeyError:
            raise DamagedPickleError(f"the storage record {name} is missing from the archive") from None
        itemsize = torch.empty((), dtype=dtype).element_size()
        if not isinstance(numel, int) or numel < 0 or info.file_size != numel * itemsize:
            raise DamagedPickleError(
                f"the storage record {name} holds {info.file_size} bytes, not {numel!r} x {itemsize}"
            )
        if info.compress_type != zipfile.ZIP_STORED or info.file_size > self.archive_size:
            raise UnsafePickleError(f"the storage record {name} is compressed (torch stores them as they are)")
        raw = bytearray(self.archive.read(name))
        return torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, *_: Any) -> torch.Tensor:
    if not isinstance(storage, torch.Tensor):
        raise UnsafePickleError(f"tensor storage is a {type(storage).__name__}, not a storage record")
    if not (
        isinstance(size, tuple)
        and isinstance(stride, tuple)
        and len(size) == len(stride)
        and all(isinstance(v, int) and v >= 0 for v in (*size, *stride, offset))
    ):
        raise UnsafePickleError(f"malformed tensor record: offset {offset!r}, size {size!r}, stride {stride!r}")
    numel = 1
    for n in size:
        numel *= n
    if numel:
        extent = offset + sum((n - 1) * s for n, s in zip(size, stride)) + 1
        if extent > storage.numel() or numel > storage.numel():
            raise UnsafePickleError(
                f"a tensor of shape {size} needs {max(extent, numel):,} elements of a storage "
                f"that holds {storage.numel():,}"
            )
    return torch.as_strided(storage, size, stride, offset)


def _archive_prefix(archive: zipfile.ZipFile, path: Path) -> str:
    roots = [
        name[: -len("data.pkl")] for name in archive.namelist() if name.endswith("/data.pkl") and name.count("/") == 1
    ]
    if len(roots) != 1:
        raise ModelFileError(
            f"{path} is a zip file but not a TorchScript or torch archive "
            f"({len(roots)} top-level data.pkl records); {REDOWNLOAD}"
        )
    return roots[0]


def read_torchscript_tensors(path: str | os.PathLike, limits: PickleLimits = DEFAULT_LIMITS) -> dict[str, torch.Tensor]:
    """Every tensor attribute of a TorchScript archive's module tree, keyed by attribute path
    (``visual.conv1.weight``), read from ``data.pkl`` and its storage records; ``code/`` is never read."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            prefix = _archive_prefix(archive, path)
            byteorder = f"{prefix}byteorder"
            if byteorder in archive.namelist() and archive.read(byteorder).strip() not in (b"little", b""):
                raise ModelFileError(f"{path}: a big-endian TorchScript archive is not supported")
            info = archive.getinfo(f"{prefix}data.pkl")
            if info.compress_type != zipfile.ZIP_STORED:
                raise UnsafePickleError("data.pkl is compressed (torch stores it as it is)")
            data = archive.read(info.filename)
            check_pickle_bounds(io.BytesIO(data), len(data), limits)
            root = _TorchScriptUnpickler(data, archive, prefix, path.stat().st_size).load()
    except DamagedPickleError as error:
        raise DamagedPickleError(f"{path} is damaged or incomplete ({error}); {REDOWNLOAD}") from None
    except UnsafePickleError as error:
        raise UnsafePickleError(f"{path}: {error}") from None
    except (zipfile.BadZipFile, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as error:
        if isinstance(error, ModelFileError):
            raise
        raise ModelFileError(
            f"{path} is damaged or incomplete ({type(error).__name__}: {error}); {REDOWNLOAD}"
        ) from None
    if not isinstance(root, ScriptObjectRecord):
        raise ModelFileError(f"{path}: the archive's data.pkl holds a {type(root).__name__}, not a TorchScript module")
    return _tensors_of(root)


def _tensors_of(record: ScriptObjectRecord, prefix: str = "") -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for name, value in getattr(record, "state", {}).items():
        if isinstance(value, torch.Tensor):
            out[prefix + str(name)] = value
        elif isinstance(value, ScriptObjectRecord):
            out.update(_tensors_of(value, f"{prefix}{name}."))
    return out


def is_torchscript_archive(path: str | os.PathLike) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(n.endswith("/data.pkl") for n in names) and any(n.split("/", 1)[-1].startswith("code/") for n in names)


def read_clip_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """CLIP tensors from OpenAI's TorchScript archive, a safetensors file or a torch state dict (open_clip form)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CLIP file not found: {path}")
    if is_torchscript_archive(path):
        return read_torchscript_tensors(path)
    state = read_safetensors(path) if path.suffix == ".safetensors" else torch_load_weights(path)
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise ModelFileError(f"{path}: expected a CLIP state dict, got {type(state).__name__}")
    return strip_prefix(dict(state))


def _count_blocks(state: Mapping[str, Any], prefix: str) -> int:
    return len({k[len(prefix) :].split(".", 1)[0] for k in state if k.startswith(prefix)})


def openai_clip_config(state: Mapping[str, torch.Tensor], source: str) -> dict[str, Any]:
    """open_clip CLIP constructor arguments for a ViT CLIP in OpenAI's key layout, read from the shapes."""
    needed = (
        "visual.proj",
        "visual.conv1.weight",
        "visual.positional_embedding",
        "text_projection",
        "positional_embedding",
        "token_embedding.weight",
        "ln_final.weight",
    )
    missing = [k for k in needed if k not in state]
    if missing:
        hint = " (a ResNet CLIP such as RN50 is not supported)" if "visual.layer1.0.conv1.weight" in state else ""
        raise ModelFileError(f"{source} is not a ViT CLIP in OpenAI's layout{hint}: missing {', '.join(missing)}")
    from open_clip.model import CLIPTextCfg, CLIPVisionCfg

    conv = state["visual.conv1.weight"]
    grid = round((state["visual.positional_embedding"].shape[0] - 1) ** 0.5)
    text_width = state["ln_final.weight"].shape[0]
    vision = CLIPVisionCfg(
        layers=_count_blocks(state, "visual.transformer.resblocks."),
        width=conv.shape[0],
        patch_size=conv.shape[-1],
        image_size=conv.shape[-1] * grid,
    )
    text = CLIPTextCfg(
        context_length=state["positional_embedding"].shape[0],
        vocab_size=state["token_embedding.weight"].shape[0],
        width=text_width,
        heads=max(1, text_width // 64),
        layers=_count_blocks(state, "transformer.resblocks."),
    )
    return {"embed_dim": state["text_projection"].shape[1], "vision_cfg": vision, "text_cfg": text}


def build_openai_clip(state: Mapping[str, torch.Tensor], source: str = "CLIP state dict") -> torch.nn.Module:
    """open_clip ``CLIP`` (QuickGELU, float32, eval) with the given tensors; every weight must be there."""
    from open_clip.model import CLIP

    config = openai_clip_config(state, source)
    model = CLIP(config["embed_dim"], config["vision_cfg"], config["text_cfg"], quick_gelu=True, cast_dtype=None)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    mis_shaped = [
        f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or mis_shaped:
        parts = [
            f"{label} ({len(keys)}): {', '.join(keys[:20])}"
            for label, keys in (("missing", missing), ("shape mismatches", mis_shaped))
            if keys
        ]
        raise ModelFileError(f"{source} does not hold the CLIP its shapes describe: " + "; ".join(parts))
    extra = sorted(k for k in state if k not in expected and k not in NON_WEIGHT_KEYS)
    if extra:
        logger.info("%s: ignoring %d tensors that are not CLIP weights (%s)", source, len(extra), ", ".join(extra[:8]))
    weights = {k: state[k].float() for k in expected if k in state}
    model.load_state_dict(weights, strict=True)
    logger.info(
        "CLIP from %s: ViT-%s/%d at %d px, width %d, %d+%d layers",
        source,
        config["vision_cfg"].width,
        config["vision_cfg"].patch_size,
        config["vision_cfg"].image_size,
        config["text_cfg"].width,
        config["vision_cfg"].layers,
        config["text_cfg"].layers,
    )
    return model.float().eval()


def load_openai_clip(path: str | os.PathLike) -> torch.nn.Module:
    """open_clip CLIP from OpenAI's released ``ViT-B-16.pt`` (read without its code) or the same weights as
    safetensors / a torch state dict."""
    return build_openai_clip(read_clip_state(path), os.fspath(path))
