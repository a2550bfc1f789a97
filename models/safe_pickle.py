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

Before anything is unpickled the whole opcode stream is scanned (:func:`check_pickle_bounds`), without
building any object: a memo index beyond the entries written so far, a length that runs past the end of
the file, nesting deeper than :attr:`PickleLimits.max_depth`, or a structure whose shared references
would expand to far more objects or bytes than the file holds (a "pickle bomb": a few hundred bytes of
nested DUP/GET references that explode when a consumer walks them) is refused with a message that
names the file. Rebuilt tensors must lie inside their storage and may not be broadcast views.

A caller rebuilds a network with its own class from ``record.init_args``/``record.init_kwargs`` and
loads ``record.state_dict()`` into it.
"""

from __future__ import annotations

import collections
import io
import logging
import os
import pickle
import pickletools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable

import numpy as np
import torch

from .checkpoint import _GLOBAL_IN_MESSAGE, REDOWNLOAD, ModelFileError, damaged_file_error

logger = logging.getLogger(__name__)

PERSISTENCE_MODULE = "torch_utils.persistence"
PERSISTENCE_ENTRY = "_reconstruct_persistent_obj"


class UnsafePickleError(pickle.UnpicklingError, ModelFileError):
    """The pickle asks for something outside the allow-list or beyond the bounds; nothing of it was executed."""


class DamagedPickleError(UnsafePickleError):
    """The pickle is truncated or its opcodes do not make sense (a damaged download, or a crafted file)."""


@dataclass(frozen=True)
class PickleLimits:
    """Bounds a pickle must keep before it is unpickled.

    A pickle written by Python's pickler expands, when every shared reference is followed, to about as many
    objects as it has opcodes and to about as many bytes as the file holds; a bomb expands exponentially.
    """

    max_depth: int = 200
    objects_per_opcode: int = 8
    min_objects: int = 100_000
    bytes_per_file_byte: int = 16  # shared storages (G and G_ema of one snapshot) count once per reference
    min_bytes: int = 1 << 20

    def max_objects(self, opcodes: int) -> int:
        return max(self.min_objects, self.objects_per_opcode * opcodes)

    def max_bytes(self, file_size: int) -> int:
        return max(self.min_bytes, self.bytes_per_file_byte * file_size)


DEFAULT_LIMITS = PickleLimits()


@dataclass
class PickleStats:
    opcodes: int
    memo_entries: int
    expanded_objects: int
    expanded_bytes: int
    depth: int


class _BoundedReader:
    """A read-only view of a stream that refuses any read reaching past its end (before allocating it)."""

    def __init__(self, stream: BinaryIO, size: int):
        self.stream, self.size = stream, size
        self.start = stream.tell()

    def tell(self) -> int:
        return self.stream.tell() - self.start

    def read(self, n: int = -1) -> bytes:
        remaining = self.size - self.tell()
        if n is None or n < 0:
            n = remaining
        if n > remaining:
            raise DamagedPickleError(
                f"a length of {n} bytes at offset {self.tell()} runs past the end of the "
                f"{self.size}-byte data (the file is truncated or damaged)"
            )
        return self.stream.read(n)

    def readline(self) -> bytes:
        return self.stream.readline(max(0, self.size - self.tell()))


_MEMO_PUT = {"PUT", "BINPUT", "LONG_BINPUT"}
_MEMO_GET = {"GET", "BINGET", "LONG_BINGET"}
_MUTATORS = {"APPEND", "APPENDS", "SETITEM", "SETITEMS", "ADDITEMS", "BUILD"}
_NO_STACK_EFFECT = {"PROTO", "FRAME"}


class _OpcodeGraph:
    """The object graph a pickle would build, as node ids and child lists, built from its opcodes alone."""

    def __init__(self, limits: PickleLimits):
        self.limits = limits
        self.children: list[list[int]] = []
        self.own_bytes: list[int] = []
        self.stack: list[int] = []
        self.marks: list[int] = []
        self.memo: dict[int, int] = {}
        self.memo_writes = 0
        self.root: int | None = None

    def node(self, children: list[int], nbytes: int = 0) -> int:
        self.children.append(children)
        self.own_bytes.append(nbytes)
        return len(self.children) - 1

    def pop(self, count: int) -> list[int]:
        floor = self.marks[-1] if self.marks else 0
        if len(self.stack) - count < floor:
            raise DamagedPickleError("the opcodes take more objects than the stack holds (a damaged pickle)")
        if count == 0:
            return []
        items = self.stack[-count:]
        del self.stack[-count:]
        return items

    def pop_to_mark(self) -> list[int]:
        if not self.marks:
            raise DamagedPickleError("an opcode expects a MARK that was never set (a damaged pickle)")
        start = self.marks.pop()
        items = self.stack[start:]
        del self.stack[start:]
        return items

    def step(self, op: pickletools.OpcodeInfo, arg: Any) -> bool:
        """Apply one opcode; True at STOP."""
        name = op.name
        if name in _NO_STACK_EFFECT:
            return False
        if name == "STOP":
            self.root = self.pop(1)[0]
            return True
        if name == "MARK":
            self.marks.append(len(self.stack))
            if len(self.marks) > self.limits.max_depth:
                raise UnsafePickleError(f"marks nested more than {self.limits.max_depth} deep")
            return False
        if name in _MEMO_PUT or name == "MEMOIZE":
            self._memo_put(len(self.memo) if name == "MEMOIZE" else int(arg))
            return False
        if name in _MEMO_GET:
            if int(arg) not in self.memo:
                raise DamagedPickleError(f"memo entry {arg} is read before it was written (a damaged pickle)")
            self.stack.append(self.memo[int(arg)])
            return False
        if name == "DUP":
            self.stack.extend(self.pop(1) * 2)
            return False
        if name == "POP":
            if self.marks and self.marks[-1] == len(self.stack):
                self.marks.pop()
            else:
                self.pop(1)
            return False
        self._generic(op, arg)
        return False

    def _memo_put(self, index: int) -> None:
        if index < 0 or index > self.memo_writes:
            raise UnsafePickleError(
                f"memo index {index} after {self.memo_writes} memo writes (a pickler numbers "
                "them in order; a large index would allocate a huge memo)"
            )
        if not self.stack or (self.marks and self.marks[-1] == len(self.stack)):
            raise DamagedPickleError("a memo write with an empty stack (a damaged pickle)")
        self.memo[index] = self.stack[-1]
        self.memo_writes += 1

    def _generic(self, op: pickletools.OpcodeInfo, arg: Any) -> None:
        before = op.stack_before
        sliced: list[int] = []
        if pickletools.markobject in before:
            sliced = self.pop_to_mark()
            before = before[: before.index(pickletools.markobject)]
        fixed = self.pop(len(before))
        if op.name in _MUTATORS:
            target, *rest = fixed
            self.children[target].extend(rest + sliced)
            self.stack.append(target)
            return
        nbytes = (
            len(arg)
            if isinstance(arg, (bytes, bytearray, str))
            else (arg.bit_length() // 8 if isinstance(arg, int) else 0)
        )
        new = self.node(fixed + sliced, nbytes)
        self.stack.extend([new] * len(op.stack_after))

    def expanded(self) -> tuple[int, int, int]:
        """(objects, bytes, depth) of the root when every shared reference is followed, capped past the limits.

        Iterative post-order over the graph with one result per node; a reference back into the path (a cycle)
        counts as one object."""
        cap_objects = self.limits.max_objects(len(self.children)) + 1
        cap_bytes = 1 << 62
        done: dict[int, tuple[int, int, int]] = {}
        on_path: set[int] = set()
        todo: list[tuple[int, bool]] = [(self.root, False)]
        while todo:
            node, children_done = todo.pop()
            if children_done:
                objects, nbytes, depth = 1, self.own_bytes[node], 0
                for child in self.children[node]:
                    c_objects, c_bytes, c_depth = done.get(child, (1, 0, 0))
                    objects = min(cap_objects, objects + c_objects)
                    nbytes = min(cap_bytes, nbytes + c_bytes)
                    depth = max(depth, c_depth + 1)
                done[node] = (objects, nbytes, depth)
                on_path.discard(node)
                continue
            if node in done or node in on_path:
                continue
            on_path.add(node)
            todo.append((node, True))
            todo.extend((child, False) for child in self.children[node] if child not in done and child not in on_path)
        return done[self.root]


def check_pickle_bounds(
    stream: BinaryIO, size: int | None = None, limits: PickleLimits = DEFAULT_LIMITS
) -> PickleStats:
    """Scan a pickle's opcodes (nothing is built or called) and refuse it when it breaks `limits`.

    stream: positioned at the pickle; read up to `size` bytes (default: to its end) and left at the STOP.
    Raises UnsafePickleError with what was found.
    """
    if size is None:
        start = stream.tell()
        size = stream.seek(0, io.SEEK_END) - start
        stream.seek(start)
    reader = _BoundedReader(stream, size)
    graph = _OpcodeGraph(limits)
    opcodes = 0
    try:
        for opcodes, (op, arg, _pos) in enumerate(pickletools.genops(reader), 1):  # noqa: B007 (read after the loop)
            if graph.step(op, arg):
                break
    except UnsafePickleError:
        raise
    except (ValueError, EOFError, IndexError, KeyError) as error:
        raise DamagedPickleError(f"not a readable pickle (truncated or damaged): {error}") from None
    if graph.root is None:
        raise DamagedPickleError("the pickle ends before its STOP opcode (the file is truncated)")
    objects, nbytes, depth = graph.expanded()
    if depth > limits.max_depth:
        raise UnsafePickleError(f"objects nested {depth} deep (more than {limits.max_depth}); refusing a pickle bomb")
    if objects > limits.max_objects(opcodes):
        raise UnsafePickleError(
            f"{opcodes} opcodes that would expand to more than {limits.max_objects(opcodes):,} objects "
            "through shared references; refusing a pickle bomb"
        )
    if nbytes > limits.max_bytes(size):
        raise UnsafePickleError(
            f"{size} bytes that would expand to {nbytes:,} bytes through shared references "
            f"(more than {limits.max_bytes(size):,}); refusing a pickle bomb"
        )
    return PickleStats(opcodes, len(graph.memo), objects, nbytes, depth)


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
                raise UnsafePickleError(
                    f"sub-module {prefix + name!r} is not a persistent object: {type(child).__name__}"
                )
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
        storage = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - whatever torch refuses, the storage is refused
        named = ", ".join(_GLOBAL_IN_MESSAGE.findall(str(error))) or type(error).__name__
        raise UnsafePickleError(f"refusing a tensor storage that a weights-only load rejects ({named})") from None
    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise UnsafePickleError(f"a tensor storage record holds a {type(storage).__name__}, not a storage")
    return storage


def _numpy_scalar(dtype: np.dtype, data: bytes | None = None) -> np.generic:
    if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(data, bytes):
        raise UnsafePickleError(f"refusing numpy scalar of dtype {dtype!r}")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


def _numpy_dtype(spec: Any, align: bool = False, copy: bool = False) -> np.dtype:
    if not isinstance(spec, str):
        raise UnsafePickleError(f"refusing numpy dtype built from {type(spec).__name__}")
    return np.dtype(spec, align, copy)


def _rebuild_tensor(storage: Any, storage_offset: int, size: tuple, stride: tuple, *rest: Any) -> torch.Tensor:
    """``torch._utils._rebuild_tensor_v2`` for tensors that lie inside their storage and are not broadcast views."""
    check_tensor_extent(storage, storage_offset, size, stride)
    return torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, *rest)


def check_tensor_extent(storage: Any, storage_offset: Any, size: Any, stride: Any) -> None:
    """Refuse a tensor record that reaches outside its storage or has more elements than the storage."""
    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise UnsafePickleError(f"tensor storage is a {type(storage).__name__}, not a storage")
    if not (
        isinstance(size, (tuple, list, torch.Size))
        and isinstance(stride, (tuple, list))
        and len(size) == len(stride)
        and all(isinstance(v, int) and v >= 0 for v in (*size, *stride, storage_offset))
    ):
        raise UnsafePickleError(f"malformed tensor record: offset {storage_offset!r}, size {size!r}, stride {stride!r}")
    elements = storage._size() if isinstance(storage, torch.TypedStorage) else storage.nbytes()
    numel = int(np.prod(size, dtype=object)) if len(size) else 1
    if numel == 0:
        return
    extent = storage_offset + sum((n - 1) * s for n, s in zip(size, stride)) + 1
    if extent > elements or numel > elements:
        raise UnsafePickleError(
            f"a tensor of shape {tuple(size)} (stride {tuple(stride)}) needs {max(extent, numel):,} "
            f"elements of a storage that holds {elements:,}"
        )


def _allowed_globals() -> dict[tuple[str, str], Callable | type]:
    allowed: dict[tuple[str, str], Callable | type] = {
        (PERSISTENCE_MODULE, PERSISTENCE_ENTRY): _record_persistent_object,
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
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


def _describe(source: str | Path | BinaryIO) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return str(getattr(source, "name", "network pickle stream"))


def load_network_pickle(source: str | Path | BinaryIO, limits: PickleLimits = DEFAULT_LIMITS) -> Any:
    """Unpickle an NVlabs snapshot with :class:`RestrictedUnpickler`, after :func:`check_pickle_bounds`.

    Returns the top-level object (for snapshots a dict with ``G``, ``D``, ``G_ema`` as
    :class:`PersistentObject` records). Raises :class:`UnsafePickleError` (naming the file) for anything not
    allowed, a pickle bomb or a damaged file.
    """
    name = _describe(source)
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as handle:
            return _load_checked(handle, name, limits)
    return _load_checked(source, name, limits)


def _load_checked(stream: BinaryIO, name: str, limits: PickleLimits) -> Any:
    start = stream.tell()
    try:
        stats = check_pickle_bounds(stream, limits=limits)
        logger.debug(
            "%s: %d opcodes, %d memo entries, %d objects expanded, depth %d",
            name,
            stats.opcodes,
            stats.memo_entries,
            stats.expanded_objects,
            stats.depth,
        )
        stream.seek(start)
        return RestrictedUnpickler(stream).load()
    except DamagedPickleError as error:
        raise DamagedPickleError(f"{name} is damaged or incomplete ({error}); {REDOWNLOAD}") from None
    except UnsafePickleError as error:
        raise UnsafePickleError(f"{name}: {error}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as error:
        raise damaged_file_error(name, f"{type(error).__name__}: {error}") from None
