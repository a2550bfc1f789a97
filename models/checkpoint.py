"""Reading released checkpoints safely: safetensors or tensors-only torch files, prefix stripping and a
strict load whose error names every missing, unexpected or mis-shaped key.

This is the one place where the pack's loaders open torch and safetensors files, and where a damaged,
truncated or refused file becomes a :class:`ModelFileError` that names the file and says what to do
(download it again), never the library's own advice (torch's "re-run with weights_only=False" would
run the file's code).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import re
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Union

import torch
import torch.nn as nn

StateSource = Union[str, os.PathLike, Mapping]

REDOWNLOAD = "delete it and download it again (scripts/fetch_models.py checks size and sha256)"


class ModelFileError(ValueError):
    """A model file that cannot be read as it is; the message names the file and what to do."""


class RefusedPickleError(ModelFileError):
    """The file pickles objects that a weights-only load refuses (nothing of them was run)."""

    def __init__(self, message: str, refused: Iterable[str] = ()):
        super().__init__(message)
        self.refused = list(refused)


def damaged_file_error(path: str | os.PathLike, detail: str) -> ModelFileError:
    return ModelFileError(f"{os.fspath(path)} is damaged or incomplete ({detail}); {REDOWNLOAD}")


def _short(error: BaseException, limit: int = 160) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


@contextlib.contextmanager
def reading_model_file(path: str | os.PathLike, what: str = "model file") -> Iterator[None]:
    """Turn a reader's failure on `path` (a library error about bytes it could not parse) into a
    ModelFileError naming the file. Errors that already name it, and missing files, pass through."""
    try:
        yield
    except (ModelFileError, FileNotFoundError, MemoryError, KeyboardInterrupt):
        raise
    except Exception as error:  # noqa: BLE001 - every parse failure of a file becomes one clear message
        if not Path(path).exists():
            raise
        if "allow_pickle" in str(error):
            raise ModelFileError(
                f"{os.fspath(path)} holds pickled Python objects (object arrays), which the pack "
                f"never loads: it is not the released file ({REDOWNLOAD})"
            ) from None
        raise damaged_file_error(path, f"{what}: {type(error).__name__}: {_short(error)}") from None


_GLOBAL_IN_MESSAGE = re.compile(r"GLOBAL ([\w.]+)")


def _refused_globals(path: Path, error: BaseException) -> list[str]:
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception:  # noqa: BLE001 - fall back to what the error message names
        return _GLOBAL_IN_MESSAGE.findall(str(error))


def _is_torchscript_archive(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(name.split("/", 1)[-1].startswith("code/") for name in names) and any(
        n.endswith("/data.pkl") for n in names
    )


def torch_load_weights(source: str | os.PathLike, safe_globals: Iterable[Any] = ()) -> Any:
    """``torch.load(map_location="cpu", weights_only=True)`` with errors that name the file.

    safe_globals: classes a caller allows on top of torch's weights-only set (inert stand-ins only).
    Raises RefusedPickleError when the file pickles other objects, ModelFileError when it is damaged.
    """
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        with torch.serialization.safe_globals(list(safe_globals)):
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "weights only" not in str(error).lower() and "weights_only" not in str(error).lower():
            raise damaged_file_error(path, f"{type(error).__name__}: {_short(error)}") from None
        refused = _refused_globals(path, error)
        named = ", ".join(refused) or "objects other than tensors"
        raise RefusedPickleError(
            f"{path} pickles {named}, which a safe (weights-only) load refuses: it is not a plain checkpoint of "
            f"this model, or it carries code. Nothing of it was run. Use the released file ({REDOWNLOAD}).",
            refused,
        ) from None
    except RuntimeError as error:
        if _is_torchscript_archive(path):
            raise ModelFileError(
                f"{path} is a TorchScript archive, whose code the pack never runs; this loader reads a plain "
                f"state dict or safetensors file ({REDOWNLOAD})"
            ) from None
        raise damaged_file_error(path, _short(error)) from None
    except (EOFError, OSError, ValueError, KeyError, IndexError, zipfile.BadZipFile) as error:
        raise damaged_file_error(path, f"{type(error).__name__}: {_short(error)}") from None


def read_safetensors(source: str | os.PathLike) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    with reading_model_file(path, "safetensors"):
        return load_file(str(path))


def read_state(source: StateSource) -> dict:
    """A state dict (or checkpoint dict) from a mapping, a .safetensors file or a torch file, loaded safely."""
    if isinstance(source, Mapping):
        return dict(source)
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        return read_safetensors(path)
    return torch_load_weights(path)


def strip_prefix(state: Mapping, prefix: str = "module.") -> dict:
    return {(k[len(prefix) :] if k.startswith(prefix) else k): v for k, v in state.items()}


def load_state_strict(module: nn.Module, state: Mapping, source: str = "state dict") -> nn.Module:
    """Load with strict=True, raising a ValueError that lists every missing, unexpected or mis-shaped key."""
    expected = module.state_dict()
    not_tensors = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise ValueError(
            f"{source}: entries that are not tensors ({len(not_tensors)}): {', '.join(map(str, not_tensors[:20]))}"
        )
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mis_shaped = [
        f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or mis_shaped:
        parts = [
            f"{label} ({len(keys)}): {', '.join(keys)}"
            for label, keys in (
                ("missing keys", missing),
                ("unexpected keys", unexpected),
                ("shape mismatches", mis_shaped),
            )
            if keys
        ]
        raise ValueError(f"{source} does not match {type(module).__name__}: " + "; ".join(parts))
    module.load_state_dict(state, strict=True)
    return module


def describe_source(source: StateSource) -> str:
    return os.fspath(source) if isinstance(source, (str, os.PathLike)) else "state dict"


def read_state_dict(source: StateSource) -> dict[str, torch.Tensor]:
    """Like read_state, for files that must hold a plain state dict (an OrderedDict of tensors)."""
    state = read_state(source)
    if not isinstance(state, Mapping):
        raise ModelFileError(f"{describe_source(source)}: expected a state dict, got {type(state).__name__}")
    not_tensors = [str(k) for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise ModelFileError(
            f"{describe_source(source)}: expected a state dict of tensors, but "
            f"{', '.join(not_tensors[:10])} {'is not a tensor' if len(not_tensors) == 1 else 'are not tensors'}"
        )
    return dict(state)
