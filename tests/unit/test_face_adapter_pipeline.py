"""Face-Adapter's plain steps: CLIP preprocessing, the feathered blend, the flicker measure."""

from __future__ import annotations

import numpy as np
import torch

from facecontrol.pipelines import face_adapter as fa

from media import load_rgb


def test_clip_pixels_equal_clip_image_processor():
    """The authors' transformers 4.37 CLIPImageProcessor resized with PIL.

    transformers 5 keeps that as the PIL backend."""
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil as CLIPImageProcessor

    photo = load_rgb("astronaut.png")
    # Face-Adapter feeds its square 512 crops; a smaller square checks the resize too
    for frame in (photo[:512, :512], photo[50:350, 100:400]):
        expected = CLIPImageProcessor()(images=frame, return_tensors="pt").pixel_values
        got = fa.clip_pixel_values(frame[None])
        assert got.shape == expected.shape == (1, 3, 224, 224)
        assert (got - expected).abs().max() < 1e-5


def test_feather_is_the_authors_ramp_across_an_edge():
    """A half-plane mask grows by 8 px (max-pool 17), then ramps over 17 px (average-pool 17, zero padded)."""
    mask = torch.zeros(1, 512, 512)
    mask[:, :, :256] = 1.0
    row = fa.feather_mask(mask)[0, 256]
    x = torch.arange(512, dtype=torch.float32)
    expected = ((272 - x) / 17).clamp(0, 1)  # ones of the grown mask inside [x-8, x+8], over 17
    assert torch.allclose(row, expected, atol=1e-6)
    # the crop border is zero padding, so a full mask stays 1 up to the edge
    full = fa.feather_mask(torch.ones(1, 64, 64))
    assert torch.allclose(full, torch.ones_like(full))


def test_feather_of_an_isolated_pixel_is_a_17_pixel_plateau_with_ramps():
    mask = torch.zeros(1, 1, 101, 101)
    mask[..., 50, 50] = 1
    soft = fa.feather_mask(mask)[0, 0]
    assert soft[50, 50] == 1.0  # grown to a 17x17 square, averaged over 17x17 fully inside it
    assert soft[50, 50 + 16] > 0 and soft[50, 50 + 17] == 0  # support: 8 (grow) + 8 (average)
    assert torch.allclose(soft, soft.T)


def test_blend_takes_generated_inside_and_base_outside():
    generated = torch.full((2, 8, 8, 3), 0.9)
    base = torch.full((2, 8, 8, 3), 0.1)
    weight = torch.zeros(2, 8, 8)
    weight[:, :4] = 1.0
    weight[:, 4] = 0.25
    out = fa.blend(generated, base, weight)
    assert torch.allclose(out[:, :4], generated[:, :4])
    assert torch.allclose(out[:, 5:], base[:, 5:])
    assert torch.allclose(out[:, 4], torch.full_like(out[:, 4], 0.3))


def test_image_to_signed_maps_images_to_minus_one_one_channels_first():
    from facecontrol.face.image import image_to_signed

    image = torch.tensor([[[[0.0, 0.5, 1.0]]]])
    assert torch.equal(image_to_signed(image), torch.tensor([[[[-1.0]], [[0.0]], [[1.0]]]]))


def test_flicker_measures_frame_to_frame_change_in_levels():
    frames = torch.zeros(3, 4, 4, 3)
    frames[1] = 10 / 255
    assert abs(fa.flicker(frames) - 10.0) < 1e-4  # |10-0| and |0-10|
    assert fa.flicker(frames[:1]) == 0.0
    mask = torch.zeros(3, 4, 4)
    assert fa.flicker(frames, mask) == 0.0
    assert np.isfinite(fa.flicker(frames, torch.ones(3, 4, 4)))
