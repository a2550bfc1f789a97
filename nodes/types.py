"""Custom ComfyUI types passed between FaceControl nodes."""
from comfy_api.latest import io

Faces = io.Custom("FACES")
FaceCrop = io.Custom("FACE_CROP")
Face3DMM = io.Custom("FACE_3DMM")
FaceLandmarks = io.Custom("FACE_LANDMARKS")
