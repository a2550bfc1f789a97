"""Bridges to ComfyUI core's own face nodes (MediaPipe Face Landmarker, ComfyUI 0.23+).

Core's landmarks come in as its FACE_LANDMARKS type and leave as our FACECONTROL_FACES, so a user of core's
detector can align, fit the 3DMM and run every paper's nodes; our faces go out as core's type for its mesh
drawing and face-mask nodes. On a ComfyUI without core's MediaPipe nodes these converters still load (the type
is just a name) but have nothing to connect to.
"""

from __future__ import annotations

import logging

from comfy_api.latest import io

from ..face import core_landmarks
from ..face.select import select_over_frames
from ..face.types import FaceSet
from .checks import FaceControlNode
from .common import progress
from .face_selection import FaceChoice, selection_inputs
from .sockets import CORE_FACE_LANDMARKS, FACES

log = logging.getLogger("facecontrol")


class FacesFromCoreLandmarks(FaceControlNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FaceControlFacesFromCoreLandmarks",
            display_name="Faces from Core Face Landmarks",
            category="FaceControl/faces",
            description="ComfyUI's own MediaPipe Face Landmarker output (FACE_LANDMARKS) as FaceControl faces: one "
            "face per frame chosen and tracked as Detect Faces does, with its 478, iBUG-68 and 5 points.",
            inputs=[
                CORE_FACE_LANDMARKS.Input("face_landmarks", tooltip="from core's MediaPipe Face Landmarker"),
                *selection_inputs(),
            ],
            outputs=[FACES.Output(display_name="faces"), io.String.Output(display_name="report")],
        )

    @classmethod
    def execute(cls, face_landmarks, **selection) -> io.NodeOutput:
        core_landmarks.check_payload(face_landmarks, "face_landmarks")
        frames, image_size, names = core_landmarks.faces_from_core(face_landmarks)
        choice = FaceChoice.from_inputs(**selection)
        face_set = select_over_frames(
            len(frames),
            image_size,
            lambda i: frames[i],
            lambda i, box: frames[i],
            choice.selection,
            choice.track,
            progress(len(frames)),
            core_landmarks.BACKEND,
        )
        face_set.blendshape_names = names
        return choice.finish(face_set, "face_landmarks", "Faces from Core Face Landmarks")


class FacesToCoreLandmarks(FaceControlNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FaceControlFacesToCoreLandmarks",
            display_name="Faces to Core Face Landmarks",
            category="FaceControl/faces",
            description="FaceControl faces (with mediapipe's 478 points) as ComfyUI's FACE_LANDMARKS, for core's "
            "MediaPipe Face Mesh Visualize and MediaPipe Face Mask nodes.",
            inputs=[FACES.Input("faces", tooltip="from Detect Faces with backend mediapipe")],
            outputs=[CORE_FACE_LANDMARKS.Output(display_name="face_landmarks")],
        )

    @classmethod
    def execute(cls, faces: FaceSet) -> io.NodeOutput:
        return io.NodeOutput(core_landmarks.core_payload(faces, "faces"))


NODES = [FacesFromCoreLandmarks, FacesToCoreLandmarks]
