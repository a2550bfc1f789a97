"""FaceControl: ComfyUI nodes for Face-Adapter, PIE and Diffusion Video Autoencoders.

ComfyUI imports this file as a custom node pack; everything ComfyUI-specific lives in `nodes/`,
imported only when ComfyUI asks for the extension, so the pack's plain-PyTorch layers stay
importable without ComfyUI (tests, scripts).
"""


async def comfy_entrypoint():
    from .nodes import FaceControlExtension

    return FaceControlExtension()


# The frontend extension (web/facecontrol.js) that loads workflows saved with the pack's older type names.
WEB_DIRECTORY = "./web"
