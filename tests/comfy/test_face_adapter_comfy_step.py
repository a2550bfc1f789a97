"""One denoising step of the ComfyUI path equals the same step computed with diffusers on the same weights.

ComfyUI side: an SD1.5-shaped UNet loaded by ComfyUI, the Face-Adapter ControlNet loaded by the pack's loader and
attached by the Apply node (hint in [-1,1], attribute tokens as the ControlNet's positive context, the empty
prompt as its negative context), identity tokens as the positive CONDITIONING, ComfyUI's Euler and CFG 5.
diffusers side: UNet2DConditionModel + ControlNetModel with the authors' pipeline arithmetic (CFG over
[negative, positive], the ControlNet's own prompt embeddings, the control image as a [-1,1] tensor).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.comfy
CFG = 5.0
T0, T1 = 899, 859  # two of SD1.5's training timesteps, so both sides use the same integer timestep


@pytest.fixture(scope="module")
def fan(comfy_in_process):
    from facecontrol.nodes import face_adapter_nodes

    return face_adapter_nodes


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def diffusers_step(unet, cnet, x0, s0, s1, identity, attributes, empty, hint, unet_negative=None):
    """The authors' pipeline step: CFG batch [neg, pos] through ControlNet then UNet, Euler update."""
    x_in = x0 / (s0**2 + 1) ** 0.5

    def eps(unet_ctx, cn_ctx):
        down, mid = cnet(
            x_in, T0, encoder_hidden_states=cn_ctx, controlnet_cond=hint, conditioning_scale=1.0, return_dict=False
        )
        return unet(
            x_in,
            T0,
            encoder_hidden_states=unet_ctx,
            down_block_additional_residuals=down,
            mid_block_additional_residual=mid,
        ).sample

    uncond = eps(empty if unet_negative is None else unet_negative, empty)
    cond = eps(identity, attributes)
    return x0 + (uncond + CFG * (cond - uncond)) * (s1 - s0)


@torch.no_grad()
def test_one_step_equals_diffusers(fan):
    import comfy.samplers
    import comfy.sd

    from filled_weights.face_adapter import diffusers_controlnet, diffusers_unet, unet_to_ldm

    unet, cnet = diffusers_unet(), diffusers_controlnet()
    model = comfy.sd.load_diffusion_model_state_dict(unet_to_ldm(unet.state_dict()))
    controlnet = fan.controlnet_from_diffusers_state(cnet.state_dict())
    bundle = fan.FaceAdapterBundle(None, None, None, None, controlnet, Path("."))

    g = torch.Generator().manual_seed(0)
    identity, attributes, empty, target_identity = (torch.randn(1, 77, 768, generator=g) for _ in range(4))
    control_image = torch.rand(1, 256, 256, 3, generator=g)
    noise = torch.randn(1, 4, 32, 32, generator=g)  # 256 px keeps the test fast

    sigmas = model.get_model_object("model_sampling").sigmas
    s0, s1 = float(sigmas[T0]), float(sigmas[T1])
    hint = control_image.movedim(-1, 1) * 2 - 1
    scale = model.get_model_object("latent_format").scale_factor

    def comfy_step(negative_tokens):
        out = fan.FaceAdapterApplyControlNet.execute(
            [[identity, {}]], [[negative_tokens, {}]], bundle, control_image, attributes, [[empty, {}]], 1.0, 0.0, 1.0
        )
        positive, negative = out.args
        sampler = comfy.samplers.ksampler("euler")
        return comfy.samplers.sample(
            model,
            noise,
            positive,
            negative,
            CFG,
            "cpu",
            sampler,
            torch.tensor([s0, s1]),
            latent_image=torch.zeros_like(noise),
            disable_pbar=True,
        )

    x0 = noise * s0

    def guided_eps(x1_latent):
        """The CFG noise prediction the step used; the step itself is dominated by x0."""
        return (x1_latent - x0) / (s1 - s0)

    # empty-prompt negative (the released code)
    expected = diffusers_step(unet, cnet, x0, s0, s1, identity, attributes, empty, hint)
    got = comfy_step(empty) * scale
    assert relative_error(got, expected) < 1e-3
    error = relative_error(guided_eps(got), guided_eps(expected))
    assert error < 1e-3

    # the paper's swap negative: the target's identity tokens for the UNet, the empty prompt for the ControlNet
    expected_paper = diffusers_step(unet, cnet, x0, s0, s1, identity, attributes, empty, hint, target_identity)
    assert relative_error(guided_eps(comfy_step(target_identity) * scale), guided_eps(expected_paper)) < 1e-3

    # the comparison tells the details apart: a [0,1] hint, or the identity tokens as the ControlNet's context
    wrong_hint = diffusers_step(unet, cnet, x0, s0, s1, identity, attributes, empty, (hint + 1) / 2)
    wrong_context = diffusers_step(unet, cnet, x0, s0, s1, identity, identity, empty, hint)
    # (the filled ControlNet moves eps by well under 1%, so the margin is stated against the error found)
    for wrong in (wrong_hint, wrong_context):
        assert relative_error(guided_eps(got), guided_eps(wrong)) > 20 * error
