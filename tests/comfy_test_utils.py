"""Reading what a queued workflow produced in the test ComfyUI server."""

from __future__ import annotations

import io
import logging
import time

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)


def png(data: bytes) -> np.ndarray:
    return np.array(Image.open(io.BytesIO(data)).convert("RGB"))


def outputs_of(comfy, entry: dict, node_id: str) -> list[dict]:
    files = comfy.output_files(entry).get(node_id, [])
    assert files, f"node {node_id} saved nothing: {entry.get('outputs')}"
    return files


def saved_image(comfy, entry: dict, node_id: str) -> np.ndarray:
    """The one image a SaveImage node wrote, as RGB uint8."""
    files = outputs_of(comfy, entry, node_id)
    assert len(files) == 1, f"node {node_id} saved {len(files)} images"
    return png(comfy.view(files[0]))


def timed_run(comfy, prompt: dict, label: str) -> dict:
    start = time.time()
    entry = comfy.run(prompt)
    log.info("%s took %.1f s", label, time.time() - start)
    return entry


def server_decoded(comfy, name: str) -> np.ndarray:
    """An input image as the server's LoadImage decodes it, saved losslessly by SaveImage (RGB uint8).

    The reference for "unchanged outside the face" checks: ComfyUI 0.33's LoadImage decodes through PyAV
    (ffmpeg), whose JPEG decode differs from libjpeg's (PIL, cv2) by up to 24 levels on t1.jpg (70% of the
    pixels); 0.3.75 decodes with PIL. Comparing with the server's own decode holds on both."""
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": name}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "facecontrol/decoded"}},
    }
    return saved_image(comfy, comfy.run(prompt), "2")
