"""The runners find their nodes in the shipped API workflows by class and title, and the samples a dataset
folder gives (the integration test runs them on real servers)."""

from __future__ import annotations

import json

import pytest
import run_dataset as rd
import run_dva
import run_face_adapter
import run_pie


class ObjectInfo:
    """The one server answer prompt building reads: a node's /object_info entry (here without a per-frame mode)."""

    def node_info(self, class_type: str) -> dict:
        return {"input": {"required": {"solver": [["as encoded", "ddim"], {}]}}}


def linked_ids(prompt: dict) -> set[str]:
    return {str(v[0]) for spec in prompt.values() for v in spec["inputs"].values() if isinstance(v, list)}


def test_face_adapter_prompts(tmp_path):
    paper = run_face_adapter.FaceAdapterPaper(rd.Networks(lambda n: n, "dlib"), 2, [])
    for kind, roles in (("same", ("source", "driver")), ("swap", ("source", "target"))):
        sample = rd.Sample("s", {r: f"{r}.png" for r in roles}, {"kind": kind})
        prompt, saves = paper.prompt(sample, {r: f"up_{r}.png" for r in roles}, ObjectInfo())
        images = sorted(prompt[n]["inputs"]["image"] for n in rd.nodes_of(prompt, "LoadImage"))
        assert images == sorted(f"up_{r}.png" for r in roles)
        assert all(prompt[n]["inputs"]["select"] == "largest" for n in rd.nodes_of(prompt, "FaceControlDetectFaces"))
        assert prompt[rd.one_node(prompt, "KSampler")]["inputs"]["steps"] == 2
        result = prompt[saves["result"]]
        assert result["class_type"] == "SaveImage"
        assert prompt[result["inputs"]["images"][0]]["class_type"] == "FaceControlPasteBack"


def test_dva_reconstruction_takes_the_edit_out(tmp_path):
    paper = run_dva.DVAPaper(rd.Networks(lambda n: n, "dlib"), 2, 3)
    prompt, saves = paper.prompt(
        rd.Sample("r", {"video": "v.mp4"}, {"kind": "reconstruction"}), {"video": "up.mp4"}, ObjectInfo()
    )
    assert not rd.nodes_of(prompt, "FaceControlDVAEditClassifier")
    decode = prompt[rd.one_node(prompt, "FaceControlDVADecode")]
    assert prompt[decode["inputs"]["dva_latent"][0]]["class_type"] == "FaceControlDVAEncode"
    assert linked_ids(prompt) <= set(prompt)
    assert prompt[rd.one_node(prompt, "ImageFromBatch")]["inputs"]["length"] == 3
    assert prompt[prompt[saves["original"]]["inputs"]["images"][0]]["class_type"] == "FaceControlAlignFaces"
    assert any("average code" in n for n in paper.protocol_notes)
    whole = run_dva.DVAPaper(rd.Networks(lambda n: n, "dlib"), 2, None)
    prompt, _ = whole.prompt(
        rd.Sample("e", {"video": "v.mp4"}, {"kind": "edit", "attribute": "Eyeglasses", "scale": 0.3}),
        {"video": "up.mp4"},
        ObjectInfo(),
    )
    assert not rd.nodes_of(prompt, "ImageFromBatch") and linked_ids(prompt) <= set(prompt)
    edit = prompt[rd.one_node(prompt, "FaceControlDVAEditClassifier")]["inputs"]
    assert (edit["attribute"], edit["scale"]) == ("Eyeglasses", 0.3)


def test_pie_prompt_sets_only_the_requested_sliders():
    paper = run_pie.PIEPaper(rd.Networks(lambda n: n, "dlib"), 1, 2)
    prompt, saves = paper.prompt(
        rd.Sample("p", {"portrait": "a.png"}, {"edit": {"smile": 0.5}}), {"portrait": "up.png"}, ObjectInfo()
    )
    edit = prompt[rd.one_node(prompt, "FaceControlPIEEdit")]["inputs"]
    assert edit["smile"] == 0.5 and edit["yaw"] == 0.0
    assert prompt[rd.one_node(prompt, "FaceControlPIEEditSettings")]["inputs"]["steps"] == 2
    assert prompt[rd.one_node(prompt, "FaceControlPIEEmbedSettings")]["inputs"]["steps_w"] == 1
    assert set(saves) == {"aligned", "edited", "reconstruction"}
    with pytest.raises(ValueError, match="no input"):
        paper.prompt(
            rd.Sample("p", {"portrait": "a.png"}, {"edit": {"tilt": 1.0}}), {"portrait": "up.png"}, ObjectInfo()
        )


def test_dataset_layouts_give_the_samples(tmp_path):
    vox = tmp_path / "voxceleb1"
    for identity, video, frames in (("id1", "v1", 3), ("id2", "v1", 1)):
        (vox / identity / video).mkdir(parents=True)
        for i in range(frames):
            (vox / identity / video / f"{i}.png").write_bytes(b"")
    import random

    samples = run_face_adapter.reenactment_samples(vox, 2, 1, random.Random(0))
    assert [s.info["kind"] for s in samples] == ["same", "same", "cross"]
    assert all(s.files["source"] != s.files["driver"] for s in samples)
    ffpp = tmp_path / "ffpp"
    for name in ("000", "001", "002"):
        (ffpp / name).mkdir(parents=True)
        for i in range(4):
            (ffpp / name / f"{i}.png").write_bytes(b"")
    (tmp_path / "pairs.json").write_text(json.dumps([["000", "002"]]))
    swaps = run_face_adapter.swap_samples(ffpp, tmp_path / "pairs.json", 2, None)
    assert [(s.info["target_id"], s.info["source_id"]) for s in swaps] == [("000", "002")] * 2
    assert run_face_adapter.evenly(list(range(10)), 3) == [0, 4, 9]


def test_plan_is_kept_for_a_resumed_run(tmp_path):
    first = rd.load_plan(tmp_path, lambda: [rd.Sample("a", {"x": "1"}), rd.Sample("b", {"x": "2"})])
    again = rd.load_plan(tmp_path, lambda: [rd.Sample("c", {"x": "3"})])
    assert [s.id for s in again] == [s.id for s in first] == ["a", "b"]
