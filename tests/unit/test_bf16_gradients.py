"""bf16 autocast of the generator, VGG-16 and IR-SE50 keeps PIE's gradient on w: CPU, filled weights.

Stated tolerance: the gradient of E_synth (L2 + VGG) + E_recognition with respect to W+ under bf16 has a
cosine similarity of at least 0.99 with the float32 one, and its norm is within 5% of it; the energies agree
within 2%. bf16 has an 8-bit mantissa (about 0.4% per rounding), so a tighter bound would test rounding noise.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from facecontrol.models.checkpoint import strip_prefix
from facecontrol.models.dva_face_encoder import IdentityNet
from facecontrol.models.precision import AutocastModule, with_precision
from facecontrol.pipelines import pie

from filled_weights.pie import _fill, tiny_generator
from pie_stand_ins import astronaut_crop

MIN_COSINE = 0.99
MAX_NORM_RATIO_ERROR = 0.05
MAX_ENERGY_ERROR = 0.02


@pytest.fixture(scope="module")
def networks():
    vgg = pie.load_vgg_perceptual({f"features.{k}": v for k, v in _fill(pie.VGGPerceptual().features, 7).items()})
    recognition = IdentityNet()
    recognition.backbone.load_state_dict(strip_prefix(_fill(recognition.backbone, 9)))
    return tiny_generator(), vgg, recognition.eval().requires_grad_(False)


def energy_and_gradient(networks, precision: str) -> tuple[torch.Tensor, torch.Tensor]:
    generator, vgg, recognition = networks
    generator.configure(compute_dtype=precision)
    vgg, recognition = with_precision(vgg, precision), with_precision(recognition, precision)
    target = astronaut_crop(generator.resolution)
    with torch.no_grad():
        target_features, target_identity = vgg(target), recognition(target)
    w = generator.sample_ws(1, torch.Generator().manual_seed(4), truncation=0.7).requires_grad_(True)
    image = generator.synthesis(w)
    energy = (image - target).square().mean() + pie.perceptual_distance(target_features, vgg(image)).sum()
    energy = energy + 0.1 * (target_identity - recognition(image)).square().sum()
    energy.backward()
    generator.configure(compute_dtype=torch.float32)
    return energy.detach(), w.grad


def test_bf16_gradient_on_w_matches_fp32(networks):
    energy32, grad32 = energy_and_gradient(networks, "fp32")
    energy16, grad16 = energy_and_gradient(networks, "bf16")
    cosine = F.cosine_similarity(grad16.flatten(), grad32.flatten(), dim=0)
    norm_ratio = grad16.norm() / grad32.norm()
    assert cosine >= MIN_COSINE, f"cosine {cosine:.4f}"
    assert abs(norm_ratio - 1) <= MAX_NORM_RATIO_ERROR, f"norm ratio {norm_ratio:.4f}"
    assert abs(energy16 / energy32 - 1) <= MAX_ENERGY_ERROR
    assert grad16.dtype == torch.float32


def test_bf16_really_computes_in_bf16(networks):
    """Guard against a silent no-op: the bf16 image differs from fp32 by rounding, not by nothing."""
    generator, vgg, _ = networks
    w = generator.mean_ws(1)
    with torch.no_grad():
        full = generator.synthesis(w)
        generator.configure(compute_dtype=torch.bfloat16)
        half = generator.synthesis(w)
        generator.configure(compute_dtype=torch.float32)
        wrapped = AutocastModule(vgg)
        features = wrapped(full)
    assert half.dtype == torch.float32 and not torch.equal(half, full)
    assert (half - full).abs().max() < 0.1 * full.abs().max()
    assert all(f.dtype == torch.float32 for f in features) and not torch.equal(features[0], vgg(full)[0])
