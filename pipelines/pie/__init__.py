"""PIE (Tewari et al. 2020): embed a real portrait in StyleGAN2's W/W+ and edit its pose, expression and
illumination through a 3DMM, with RigNet or directly. Plain PyTorch; no ComfyUI imports.

Modules:

- :mod:`.formation`: :class:`FaceFormation`, what a 3DMM backend gives PIE, the groups tau and theta helpers;
  :mod:`.ict` (the open ICT-FaceKit default) and :mod:`.bfm` (the BFM with Deep3DFaceRecon's regressor).
- :mod:`.generator`: synthesis from W+ and random W+ latents.
- :mod:`.energies`: the image loss l(I', theta) and the five energy terms.
- :mod:`.embed`: the hierarchical W then W+ optimisation.
- :mod:`.edit`: edit targets (sliders, reference groups), direct mode and RigNet mode.
- :mod:`.rignet_losses`: StyleRig's self-supervised RigNet training losses.
- the perceptual network Phi is :mod:`facecontrol.models.vgg_perceptual`.

Images are (B,3,H,W) in [-1,1] (the generator's range) unless a name says ``01``. Everything public is
re-exported here, so ``from facecontrol.pipelines import pie; pie.embed(...)`` is the way to use it.
"""

from ...models.vgg_perceptual import VGGPerceptual, load_vgg_perceptual
from .edit import (
    EDIT_MODES,
    EDIT_SLIDERS,
    EXPRESSION_SLIDERS,
    LIGHT_SLIDER_NAMES,
    DirectEditConfig,
    EditOutcome,
    EditRequest,
    choose_mode,
    config_from_kwargs,
    edit_direct,
    edit_report,
    edit_rignet,
    edited_taus,
    edited_theta,
    light_summary,
    limit_light,
    min_irradiance,
    regress_generated,
    run_edit,
)
from .embed import (
    OPTIMIZERS,
    RECOGNITION_NETS,
    EmbedConfig,
    EmbedResult,
    StepCallback,
    deterministic_backward,
    embed,
    make_optimizer,
)
from .energies import PIEModels, PIEWeights, Target, image_loss, make_target, perceptual_distance, pie_energies
from .formation import LANDMARK_CROP, TAU_KEYS, FaceFormation, Theta, detach_theta, tau_vector, theta_distance, with_tau
from .generator import sample_mixed_w_plus, sample_w_plus, synthesize
from .ict import ICTFaceFormation
from .rignet_losses import RigNetLossWeights, parse_rig_layers, rignet_losses

__all__ = [
    "parse_rig_layers",
    "EDIT_MODES",
    "EditOutcome",
    "EditRequest",
    "run_edit",
    "OPTIMIZERS",
    "RECOGNITION_NETS",
    "make_optimizer",
    "EDIT_SLIDERS",
    "EXPRESSION_SLIDERS",
    "LIGHT_SLIDER_NAMES",
    "choose_mode",
    "LANDMARK_CROP",
    "TAU_KEYS",
    "DirectEditConfig",
    "EmbedConfig",
    "EmbedResult",
    "FaceFormation",
    "ICTFaceFormation",
    "PIEModels",
    "PIEWeights",
    "RigNetLossWeights",
    "StepCallback",
    "Target",
    "Theta",
    "VGGPerceptual",
    "config_from_kwargs",
    "deterministic_backward",
    "detach_theta",
    "edit_direct",
    "edit_report",
    "edit_rignet",
    "edited_taus",
    "light_summary",
    "limit_light",
    "min_irradiance",
    "edited_theta",
    "embed",
    "image_loss",
    "load_vgg_perceptual",
    "make_target",
    "perceptual_distance",
    "pie_energies",
    "regress_generated",
    "rignet_losses",
    "sample_mixed_w_plus",
    "sample_w_plus",
    "synthesize",
    "tau_vector",
    "theta_distance",
    "with_tau",
]
