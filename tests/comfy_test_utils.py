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
