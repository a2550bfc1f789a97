"""OpenAI CLIP's TorchScript archive is read without its code (models/clip_archive.py)."""

import copy
import importlib.util
import zipfile
from pathlib import Path
from typing import Tuple

import pytest
import torch
from open_clip.model import convert_weights_to_fp16

from facecontrol.models.checkpoint import ModelFileError
from facecontrol.models.clip_archive import load_openai_clip, read_torchscript_tensors
from facecontrol.models.safe_pickle import UnsafePickleError


def _filled_weights():
    spec = importlib.util.spec_from_file_location(
        "dva_filled_weights", Path(__file__).parents[1] / "filled_weights" / "dva.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


weights = _filled_weights()


@pytest.fixture(scope="module")
def small_clip():
    return weights.clip_module(weights.clip_state())


def inputs():
    generator = torch.Generator().manual_seed(3)
    images = torch.randn(2, 3, 224, 224, generator=generator)
    tokens = torch.randint(1, 49407, (2, 77), generator=generator)
    tokens[:, 0], tokens[:, 9] = 49406, 49407  # start and end of text: encode_text pools at the argmax token
    tokens[:, 10:] = 0
    return images, tokens


@torch.no_grad()
def test_released_layout_archive_gives_the_outputs_of_the_module_it_was_saved_from(tmp_path, small_clip):
    path = tmp_path / "ViT-B-16.pt"
    scripted = weights.write_openai_clip_archive(small_clip, path)
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    assert any("/code/" in n for n in names) and any(n.endswith("/data.pkl") for n in names)

    tensors = read_torchscript_tensors(path)
    assert tensors["visual.conv1.weight"].dtype == torch.float16  # as OpenAI stores it
    assert int(tensors["input_resolution"]) == 224 and int(tensors["vocab_size"]) == 49408

    loaded = load_openai_clip(path)
    images, tokens = inputs()
    # references: the archive's own compiled code (run here, on a file this test wrote) and the Python module
    reference = copy.deepcopy(small_clip)
    convert_weights_to_fp16(reference)  # what OpenAI's file stores in half precision
    reference.float()
    for name in ("encode_image", "encode_text"):
        x = images if name == "encode_image" else tokens
        ours = getattr(loaded, name)(x)
        torch.testing.assert_close(ours, getattr(reference, name)(x), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(
            ours, getattr(scripted, name)(x.half() if name == "encode_image" else x).float(), rtol=2e-2, atol=2e-2
        )


@torch.no_grad()
def test_open_clip_safetensors_form_loads_the_same_weights(tmp_path, small_clip):
    from safetensors.torch import save_file

    path = tmp_path / "open_clip_model.safetensors"
    save_file({k: v.contiguous() for k, v in small_clip.state_dict().items()}, str(path))
    loaded = load_openai_clip(path)
    images, tokens = inputs()
    torch.testing.assert_close(loaded.encode_image(images), small_clip.encode_image(images))
    torch.testing.assert_close(loaded.encode_text(tokens), small_clip.encode_text(tokens))


class WritesOnLoad(torch.nn.Module):
    """A module whose TorchScript __setstate__ (run by torch.jit.load) creates a file of its choosing."""

    def __init__(self, marker: str):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(2))
        self.path = marker

    def forward(self, x):
        return x * self.weight

    @torch.jit.export
    def __getstate__(self) -> Tuple[torch.Tensor, str, bool]:
        return (self.weight, self.path, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[torch.Tensor, str, bool]) -> None:
        self.weight = state[0]
        self.path = state[1]
        self.training = state[2]
        written = torch.from_file(state[1], True, 8, dtype=torch.uint8)
        written.fill_(65)
        self.weight = self.weight + written[:2].float() * 0


def hostile_archive(path: Path, marker: Path) -> Path:
    torch.jit.save(torch.jit.script(WritesOnLoad(str(marker))), str(path))
    assert not marker.exists()
    return path


def test_archive_whose_code_writes_on_load_is_refused(tmp_path):
    marker = tmp_path / "written-by-the-archive"
    path = hostile_archive(tmp_path / "ViT-B-16.pt", marker)
    with pytest.raises(UnsafePickleError, match="__setstate__") as refused:
        load_openai_clip(path)
    assert str(path) in str(refused.value)
    assert not marker.exists()


def test_the_hostile_archive_is_live(tmp_path):
    """Control: what torch.jit.load (the old loader) does with the same file."""
    marker = tmp_path / "written-by-the-archive"
    torch.jit.load(str(hostile_archive(tmp_path / "evil.pt", marker)))
    assert marker.read_bytes() == b"A" * 8


class CLIPThatWritesWhenRun(torch.nn.Module):
    """CLIP-shaped weights whose encode_image code creates a file when it runs."""

    def __init__(self, clip: torch.nn.Module, marker: str):
        super().__init__()
        self.visual = clip.visual
        self.marker = marker

    @torch.jit.export
    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        written = torch.from_file(self.marker, True, 8, dtype=torch.uint8)
        written.fill_(66)
        return self.visual(image)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.encode_image(image)


@torch.no_grad()
def test_code_of_a_loaded_archive_never_runs(tmp_path, small_clip):
    marker = tmp_path / "written-when-run"
    hostile = CLIPThatWritesWhenRun(small_clip, str(marker))
    path = tmp_path / "ViT-B-16.pt"
    torch.jit.save(torch.jit.script(hostile), str(path))
    with pytest.raises(ModelFileError, match="not a ViT CLIP") as refused:  # no text tower in it
        load_openai_clip(path)
    assert str(path) in str(refused.value)
    tensors = read_torchscript_tensors(path)
    assert torch.equal(tensors["visual.conv1.weight"], small_clip.visual.conv1.weight)
    assert not marker.exists()


def test_truncated_archive_says_download_again(tmp_path, small_clip):
    path = tmp_path / "ViT-B-16.pt"
    weights.write_openai_clip_archive(small_clip, path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ModelFileError, match="download it again") as refused:
        load_openai_clip(path)
    assert str(path) in str(refused.value) and "weights_only" not in str(refused.value)
