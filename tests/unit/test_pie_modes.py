"""PIE Edit's mode choice: auto runs RigNet when one is loaded for the edited groups, direct otherwise."""

from __future__ import annotations

import pytest

from facecontrol.models.rignet import RigNetBundle
from facecontrol.pipelines import pie


def test_auto_uses_the_rignet_only_when_it_covers_every_edited_group():
    bundle = RigNetBundle(4, 8, {"pose": 3, "illumination": 27})
    assert pie.choose_mode("auto", bundle, ("pose",))[0] == "rignet"
    assert pie.choose_mode("auto", bundle, ("pose", "illumination"))[0] == "rignet"
    mode, why = pie.choose_mode("auto", bundle, ("pose", "expression"))
    assert mode == "direct" and "expression" in why
    mode, why = pie.choose_mode("auto", None, ("pose",))
    assert mode == "direct" and "scripts/train_rignet.py" in why
    assert pie.choose_mode("direct", bundle, ("pose",))[0] == "direct"


def test_rignet_mode_without_a_fitting_rignet_is_an_error():
    with pytest.raises(ValueError, match="no 'rignet' is connected"):
        pie.choose_mode("rignet", None, ("pose",))
    with pytest.raises(ValueError, match="no network for"):
        pie.choose_mode("rignet", RigNetBundle(4, 8, {"pose": 3}), ("expression",))
    with pytest.raises(ValueError, match="'mode' must be one of"):
        pie.choose_mode("rig", None, ())
