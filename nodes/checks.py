"""Checks every FaceControl node runs on its inputs and outputs, from the node's own schema.

ComfyUI checks a widget's min/max only for values typed into the widget; a value that arrives through a link
(a primitive, another node's output, the API) is passed on unchecked. So every node checks here, before it
runs: numbers are finite and inside the limits its schema declares, choices are among its options, IMAGE and
MASK inputs hold finite pixels, and the pack's own sockets carry the pack's own objects. After it runs, any
IMAGE, MASK, LATENT or CONDITIONING it returns must be finite: a NaN there would reach the user as a black
image reported as a success.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
from typing import Any

import torch
from comfy_api.latest import io

from .sockets import PREFIX, carried_class

_CHECKED = "_facecontrol_checked"


class FaceControlNode(io.ComfyNode):
    """Base of every FaceControl node: its ``execute`` runs inside :func:`check_inputs` / :func:`check_outputs`."""

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        execute = cls.__dict__.get("execute")
        if isinstance(execute, classmethod) and not getattr(execute.__func__, _CHECKED, False):
            cls.execute = classmethod(_checked(execute.__func__))


def _checked(execute):
    signature = inspect.signature(execute)

    @functools.wraps(execute)
    def run(cls, *args, **kwargs):
        schema = cls.define_schema()
        result = execute(cls, **check_inputs(schema, _as_keywords(signature, cls, args, kwargs)))
        check_outputs(schema, result)
        return result

    setattr(run, _CHECKED, True)
    return run


def _as_keywords(signature: inspect.Signature, cls, args: tuple, kwargs: dict) -> dict[str, Any]:
    """The call's arguments by input name (ComfyUI passes keywords; direct calls may pass them by position)."""
    bound = signature.bind(cls, *args, **kwargs).arguments
    values: dict[str, Any] = {}
    for name, value in list(bound.items())[1:]:
        if signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
            values.update(value)
        else:
            values[name] = value
    return values


# ---------------------------------------------------------------- inputs


def check_inputs(schema: io.Schema, values: dict[str, Any]) -> dict[str, Any]:
    """Raise on the first bad input; return the inputs with whole FLOAT-typed numbers given to INT made int."""
    checked = dict(values)
    for spec in schema.inputs:
        if spec.id in values and not (values[spec.id] is None and spec.optional):
            checked[spec.id] = check_input(schema.display_name or schema.node_id, spec, values[spec.id])
    return checked


def check_input(node: str, spec, value):
    kind = spec.io_type
    if kind in ("INT", "FLOAT"):
        _check_number(node, spec, value)
        return int(value) if kind == "INT" else value
    elif kind == "BOOLEAN" and not isinstance(value, bool):
        raise ValueError(f"{node}: '{spec.id}' must be true or false, got {value!r}")
    elif kind == "STRING" and not isinstance(value, str):
        raise ValueError(f"{node}: '{spec.id}' must be text, got {type(value).__name__}")
    elif kind == "COMBO":
        _check_choice(node, spec, value)
    elif kind in ("IMAGE", "MASK"):
        _check_pixels(node, spec.id, kind, value)
    elif kind.startswith(PREFIX):
        _check_carried(node, spec.id, kind, value)
    return value


def _check_number(node: str, spec, value) -> None:
    name = f"'{spec.id}'"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{node}: {name} must be a number, got {type(value).__name__} {value!r}")
    if not math.isfinite(float(value)):
        raise ValueError(f"{node}: {name} is {value}; give a finite number")
    if spec.io_type == "INT" and float(value) != int(value):
        raise ValueError(f"{node}: {name} must be a whole number, got {value}")
    if spec.min is not None and value < spec.min:
        raise ValueError(f"{node}: {name} = {value} is below its minimum {spec.min}")
    if spec.max is not None and value > spec.max:
        raise ValueError(f"{node}: {name} = {value} is above its maximum {spec.max}")


def _check_choice(node: str, spec, value) -> None:
    options = getattr(spec, "options", None)
    if options and value not in options:
        shown = ", ".join(repr(o) for o in list(options)[:12])
        raise ValueError(f"{node}: '{spec.id}' = {value!r} is not one of its choices ({shown})")


def _check_pixels(node: str, name: str, kind: str, value) -> None:
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{node}: '{name}' must be an {kind}, got {type(value).__name__}")
    if value.dim() >= 3 and value.shape[0] == 0:
        raise ValueError(f"{node}: '{name}' is an empty batch (0 frames)")
    bad = _nonfinite_items(value)
    if bad:
        raise ValueError(
            f"{node}: '{name}' has NaN or infinite values in {_frames_text(bad)}; fix the node that made it"
        )


def _check_carried(node: str, name: str, kind: str, value) -> None:
    expected = carried_class(kind)
    if expected is not None and not isinstance(value, expected):
        raise ValueError(
            f"{node}: '{name}' expects a {kind} ({expected.__name__}) but got a "
            f"{type(value).__module__}.{type(value).__name__}; connect the matching FaceControl output"
        )


# ---------------------------------------------------------------- outputs


def check_outputs(schema: io.Schema, result) -> None:
    values = getattr(result, "args", None)
    if not values:
        return
    node = schema.display_name or schema.node_id
    for spec, value in zip(schema.outputs, values):
        name = spec.display_name or spec.io_type
        for frames in _output_tensors(spec.io_type, value):
            bad = _nonfinite_items(frames)
            if bad:
                raise ValueError(
                    f"{node}: its output '{name}' came out with NaN or infinite values in "
                    f"{_frames_text(bad)}; nothing was passed on (check the inputs and settings of "
                    f"this node for those frames)"
                )


def _output_tensors(kind: str, value) -> list[torch.Tensor]:
    if kind in ("IMAGE", "MASK") and isinstance(value, torch.Tensor):
        return [value]
    if kind == "LATENT" and isinstance(value, dict) and isinstance(value.get("samples"), torch.Tensor):
        return [value["samples"]]
    if kind == "CONDITIONING" and isinstance(value, list):
        return [entry[0] for entry in value if isinstance(entry, (list, tuple)) and isinstance(entry[0], torch.Tensor)]
    return []


def _nonfinite_items(tensor: torch.Tensor) -> list[int]:
    """Batch indices (first dimension) that hold a NaN or infinity; a 2-D MASK counts as one frame."""
    if not tensor.is_floating_point():
        return []
    if tensor.dim() < 3:
        return [] if bool(torch.isfinite(tensor).all()) else [0]
    bad = ~torch.isfinite(tensor.reshape(tensor.shape[0], -1)).all(dim=1)
    return torch.nonzero(bad).flatten().tolist()


def _frames_text(indices: list[int]) -> str:
    shown = ", ".join(str(i) for i in indices[:10])
    more = f" and {len(indices) - 10} more" if len(indices) > 10 else ""
    return f"frame {shown}" if len(indices) == 1 else f"frames {shown}{more}"
