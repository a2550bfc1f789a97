"""The face-selection inputs of the nodes that pick one face per frame (Detect Faces, Faces from Core Face
Landmarks): one schema, read into face/select.py's Selection and finished by its finish_selection, so a new
selection mode or input is one change here and in face/select.py."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from comfy_api.latest import io

from ..face.select import IF_NO_FACE, ORDERS, SELECTIONS, Selection, finish_selection
from ..face.types import FaceSet

log = logging.getLogger("facecontrol")


def selection_inputs() -> list[io.Input]:
    """select, index, order, x, y, track and if_no_face: how one face per frame is chosen and kept."""
    return [
        io.Combo.Input(
            "select",
            options=list(SELECTIONS),
            default="largest",
            tooltip="largest: true box area; 'largest (Face-Adapter key)': the authors' "
            "(x2-x1)*y2 - y1 for exact reproduction",
        ),
        io.Int.Input("index", default=0, min=0, max=63, tooltip="with select=index: position in 'order'"),
        io.Combo.Input("order", options=list(ORDERS), default="left-right"),
        _reference_input("x", "width"),
        _reference_input("y", "height"),
        io.Boolean.Input("track", default=True, tooltip="follow the chosen face from frame to frame"),
        io.Combo.Input("if_no_face", options=list(IF_NO_FACE), default="error"),
    ]


def _reference_input(axis: str, extent: str) -> io.Float.Input:
    tooltip = f"with select=closest: reference {axis} (fraction of {extent})"
    return io.Float.Input(axis, default=0.5, min=0.0, max=1.0, step=0.01, tooltip=tooltip)


@dataclass(frozen=True)
class FaceChoice:
    """The values of :func:`selection_inputs`."""

    selection: Selection
    track: bool
    if_no_face: str

    @classmethod
    def from_inputs(
        cls, select: str, index: int, order: str, x: float, y: float, track: bool, if_no_face: str
    ) -> FaceChoice:
        return cls(Selection(select, index, order, (x, y)), bool(track), if_no_face)

    def finish(self, face_set: FaceSet, input_name: str, node_name: str) -> io.NodeOutput:
        """The node's (faces, report) after face/select.py's finish_selection (an error or filled frames)."""
        face_set = finish_selection(face_set, self.selection, self.if_no_face, input_name)
        report = face_set.describe()
        log.info("%s: %s", node_name, report)
        return io.NodeOutput(face_set, report)
