"""DVA classifier-direction edit against editing_classifier.py (fixture dva_cls_edit)."""
import pytest
import torch

from golden_fixtures import load_fixture

from facecontrol.models.dva_checkpoint import read_dva_classifier
from facecontrol.pipelines.dva import (
    CELEBA_ATTRIBUTES,
    attribute_direction,
    attribute_index,
    average_identity,
    classifier_edit,
    normalize_identity,
)

pytestmark = pytest.mark.golden


def test_attribute_names_and_index():
    fx = load_fixture("dva_cls_edit")
    assert list(CELEBA_ATTRIBUTES) == fx.config["id_to_cls"]
    assert attribute_index(fx.config["attribute"]) == fx.config["cls_id"] == int(fx.inputs["in.cls_id"])


def test_dva_classifier_edit():
    fx = load_fixture("dva_cls_edit")
    classifier = read_dva_classifier({"state_dict": fx.filled_state_dict()})
    cls_id, scale = fx.inputs["in.cls_id"], fx.inputs["in.scale"]
    mean, std = classifier.conds_mean, classifier.conds_std

    z_id_rep = average_identity(fx.inputs["in.z_id_frames"])
    fx.check("z_id_rep", z_id_rep)
    z_norm = normalize_identity(z_id_rep, mean, std)
    fx.check("z_norm", z_norm)
    step = float(scale) * 512 ** 0.5
    fx.check("z_norm_edited", z_norm + step * attribute_direction(classifier.weight, cls_id))
    edited = classifier_edit(z_id_rep, classifier.weight, cls_id, scale, mean, std)
    fx.check("z_id_edited", edited)
    assert torch.allclose(edited.norm(dim=1), torch.ones(1))
