"""Restricted unpickler for NVlabs network pickles (stylegan2-ada-pytorch, stylegan3).

NVlabs snapshots pickle their networks through ``torch_utils.persistence``: every network object is
stored as a call ``_reconstruct_persistent_obj(meta)`` whose ``meta`` holds the module's source text
(``module_src``), the class name and the object state (its ``__dict__``: parameters, buffers,
sub-modules, ``_init_args`` and ``_init_kwargs``). Plain ``pickle.load`` would ``exec`` that source.

This unpickler resolves only an allow-list of globals (tensor and storage rebuilders, torch dtypes,
``collections.OrderedDict``, numpy scalars and dtypes, ``dnnlib.EasyDict``), and maps the persistence
entry point to :func:`_record_persistent_object`, which returns a :class:`PersistentObject` record and
never looks at ``module_src``. Any other global (``os.system``, ``builtins.exec``, a torch module
class, ...) raises :class:`UnsafePickleError` before anything is called. Tensor storages, which plain
pickling stores as nested ``torch.save`` bytes, are read with ``torch.load(weights_only=True)``.

A caller rebuilds a network with its own class from ``record.init_args``/``record.init_kwargs`` and
loads ``record.state_dict()`` into it.
"""
from __future__ import annotations

import collections
import io
import logging
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable

import numpy as np
import torch

logger = logging.getLogger(__name__)

PERSISTENCE_MODULE = "torch_utils.persistence"
PERSISTENCE_ENTRY = "_reconstruct_persistent_obj"


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle asks for something outside the allow-list; nothing of it was executed."""


class AttrDict(dict):
    """Stand-in for ``dnnlib.EasyDict``: a dict whose keys are also attributes."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError as error:
            raise AttributeError(name) from error

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value


@dataclass
class PersistentObject:
    """What a persistent NVlabs object carried, minus its source code."""

    class_name: str
    init_args: tuple = ()
    init_kwargs: dict = field(default_factory=dict)
    state: dict = field(default_factory=dict)
    version: int | None = None
    module_src_chars: int = 0

    def submodules(self) -> dict[str, "PersistentObject"]:
        return dict(self.state.get("_modules") or {})

    def state_dict(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """Parameters and persistent buffers, recursively, keyed like ``nn.Module.state_dict``."""
        out: dict[str, torch.Tensor] = {}
        for name, value in (self.state.get("_parameters") or {}).items():
            if value is not None:
                out[prefix + name] = value.detach()
        skipped = set(self.state.get("_non_persistent_buffers_set") or ())
        for name, value in (self.state.get("_buffers") or {}).items():
            if value is not None and name not in skipped:
                out[prefix + name] = value
        for name, child in self.submodules().items():
            if child is None:
                continue
            if not isinstance(child, PersistentObject):
                raise UnsafePickleError(f"sub-module {prefix + name!r} is not a persistent object: {type(child).__name__}")
            out.update(child.state_dict(prefix + name + "."))
        return out


def _record_persistent_object(meta: dict) -> PersistentObject:
    """Replacement for ``torch_utils.persistence._reconstruct_persistent_obj``: record, never exec."""
    if not isinstance(meta, dict):
        raise UnsafePickleError(f"persistent object meta is a {type(meta).__name__}, expected a dict")
    if meta.get("type") != "class":
        raise UnsafePickleError(f"unsupported persistent object type {meta.get('type')!r}")
    state = dict(meta.get("state") or {})
    logger.debug("recorded persistent %s; its module_src was not executed", meta.get("class_name"))
    return PersistentObject(
        class_name=str(meta.get("class_name")),
        init_args=tuple(state.get("_init_args") or ()),
        init_kwargs=_plain(state.get("_init_kwargs") or {}),
        state=state,
        version=meta.get("version"),
        module_src_chars=len(meta.get("module_src") or ""),
    )


def _plain(value: Any) -> Any:
    """Nested AttrDict/OrderedDict -> plain dicts, numpy scalars -> Python numbers."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(item) for item in value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def _load_storage_from_bytes(data: bytes) -> Any:
    """Replacement for ``torch.storage._load_from_bytes`` that refuses code in the nested pickle."""
    if not isinstance(data, bytes):
        raise UnsafePickleError(f"tensor storage given as {type(data).__name__}, expected bytes")
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:
        raise UnsafePickleError(f"refusing a tensor storage that torch.load(weights_only=True) rejects: {error}") from error


def _numpy_scalar(dtype: np.dtype, data: bytes | None = None) -> np.generic:
    if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(data, bytes):
        raise UnsafePickleError(f"refusing numpy scalar of dtype {dtype!r}")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


def _numpy_dtype(spec: Any, align: bool = False, copy: bool = False) -> np.dtype:
    if not isinstance(spec, str):
        raise UnsafePickleError(f"refusing numpy dtype built from {type(spec).__name__}")
    return np.dtype(spec, align, copy)


def _allowed_globals() -> dict[tuple[str, str], Callable | type]:
    allowed: dict[tuple[str, str], Callable | type] = {
        (PERSISTENCE_MODULE, PERSISTENCE_ENTRY): _record_persistent_object,
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
        ("torch.storage", "_load_from_bytes"): _load_storage_from_bytes,
        ("torch", "Size"): torch.Size,
        ("numpy", "dtype"): _numpy_dtype,
        ("numpy.core.multiarray", "scalar"): _numpy_scalar,
        ("numpy._core.multiarray", "scalar"): _numpy_scalar,
        ("dnnlib.util", "EasyDict"): AttrDict,
        ("dnnlib", "EasyDict"): AttrDict,
        # Protocol < 4 pickles (Python 3.7-era snapshots) store sets through these globals.
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("__builtin__", "set"): set,
        ("__builtin__", "frozenset"): frozenset,
    }
    for name in ("float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool"):
        allowed[("torch", name)] = getattr(torch, name)
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the allow-listed globals above."""

    _allowed = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        target = self._allowed.get((module, name))
        if target is None and module.startswith("dnnlib.tflib"):
            raise UnsafePickleError(
                "this is a TensorFlow StyleGAN pickle; convert it to a PyTorch pickle (stylegan2-ada-pytorch "
                "legacy.py) or a rosinality .pt (convert_weight.py) first"
            )
        if target is None:
            raise UnsafePickleError(
                f"refusing to load global {module}.{name}: it is not on the allow-list of this NVlabs "
                "network-pickle reader (the file may carry code; nothing of it was run)"
            )
        return target

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"refusing persistent id {pid!r} in a network pickle")


def load_network_pickle(source: str | Path | BinaryIO) -> Any:
    """Unpickle an NVlabs snapshot with :class:`RestrictedUnpickler`.

    Returns the top-level object (for snapshots a dict with ``G``, ``D``, ``G_ema`` as
    :class:`PersistentObject` records). Raises :class:`UnsafePickleError` for anything not allowed.
    """
    if isinstance(source, (str, Path)):
        with open(source, "rb") as handle:
            return RestrictedUnpickler(handle).load()
    return RestrictedUnpickler(source).load()
