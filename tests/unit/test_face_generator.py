"""The 3DMM face generator (models/face_generator.py): one StyleGAN2 interface, W+ layers feeding their own
parameter groups, a safetensors round trip, and faces an independent eye (mediapipe) sees turn as theta says."""

from __future__ import annotations

import functools

import numpy as np
import torch

from facecontrol.face.ict_model import load_ict_model
from facecontrol.models.face_generator import (
    GROUP_LAYERS,
    FaceGenerator,
    build_face_generator,
    is_face_generator_file,
    load_face_generator,
    save_face_generator,
)
from facecontrol.models.stylegan2 import load_stylegan2
from facecontrol.models.stylegan_interface import StyleGAN2Generator

from media import ict_facekit_dir

PARAMETERS = {"pose": "angles", "identity": "identity", "expression": "expression", "appearance": "light"}


@functools.cache
def generator(resolution: int = 64):
    return build_face_generator(load_ict_model(ict_facekit_dir() / "face_model.npz"), seed=0, resolution=resolution)


def test_it_is_a_stylegan2_generator_with_faces_in_range():
    g = generator()
    assert isinstance(g, StyleGAN2Generator)
    ws = g.sample_ws(3, torch.Generator().manual_seed(0), 0.7)
    assert ws.shape == (3, g.num_ws, g.w_dim)
    images = g.synthesis(ws)
    assert images.shape == (3, 3, 64, 64)
    centre = images[:, :, 24:40, 24:40]
    assert (centre - images[:, :, :2, :2].mean()).abs().mean() > 0.05  # a face, not background, in the centre
    assert torch.allclose(g.mean_ws(1)[0, 0], g.w_avg)


def test_each_wplus_layer_group_drives_only_its_parameters():
    g = generator()
    ws = g.sample_ws(2, torch.Generator().manual_seed(1), 1.0)
    base = g.face_parameters(ws)
    other = g.sample_ws(2, torch.Generator().manual_seed(2), 1.0)
    for group, layers in GROUP_LAYERS.items():
        mixed = ws.clone()
        mixed[:, list(layers)] = other[:, list(layers)]
        changed = g.face_parameters(mixed)
        for other_group, key in PARAMETERS.items():
            moved = (changed[key] - base[key]).abs().max()
            assert (moved > 1e-3) == (other_group == group), (group, other_group, float(moved))


def test_file_round_trip_and_format_check(tmp_path):
    g = generator()
    path = tmp_path / "faces.safetensors"
    save_face_generator(g, path)
    assert is_face_generator_file(path)
    loaded = load_face_generator(path)
    info = loaded.load_info
    assert info["num_ws"] == g.num_ws and info["resolution"] == 64
    ws = g.sample_ws(2, torch.Generator().manual_seed(3), 0.7)
    assert torch.equal(loaded.synthesis(ws), g.synthesis(ws))
    assert isinstance(load_stylegan2(path), FaceGenerator)  # the one StyleGAN2 loader reads it too


def _mediapipe_nose_offset(images: torch.Tensor) -> list[float]:
    """Nose tip minus the eye-corner midpoint along x, in inter-ocular distances (mediapipe's 478 points)."""
    from facecontrol.face.detect_mediapipe import MediaPipeFaceDetector

    from face_test_utils import mediapipe_model_path

    detector = MediaPipeFaceDetector(mediapipe_model_path(), max_faces=1)
    offsets = []
    try:
        for image in images:
            rgb = ((image.permute(1, 2, 0).numpy() + 1) * 127.5).clip(0, 255).astype(np.uint8)
            faces = detector._run(rgb)
            assert faces, "mediapipe found no face in a generated portrait"
            points = faces[0].lm478[:, :2]
            right, left, nose = points[33], points[263], points[1]
            offsets.append(float((nose[0] - (right[0] + left[0]) / 2) / np.linalg.norm(left - right)))
    finally:
        detector.close()
    return offsets


def test_mediapipe_sees_the_true_yaw_of_the_generated_faces():
    g = generator(128)
    ws = g.sample_ws(6, torch.Generator().manual_seed(4), 1.0)
    yaw = g.face_parameters(ws)["angles"][:, 0]
    offsets = _mediapipe_nose_offset(g.synthesis(ws))
    correlation = np.corrcoef(yaw.numpy(), offsets)[0, 1]
    assert correlation > 0.8, (yaw.tolist(), offsets)
