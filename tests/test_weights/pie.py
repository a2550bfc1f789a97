"""PIE test weights in the released layouts.

- ``stylegan2/ffhq.pkl`` (the released name, small contents): an NVlabs ``network-snapshot`` pickle (``G``, ``D``, ``G_ema``) of a
  64 px StyleGAN2-ADA generator (channel_max 64, 10 W+ layers), written through a stand-in for
  ``torch_utils.persistence`` so the pack's restricted unpickler reads it like a real snapshot. Its weights
  use StyleGAN2's own initialisation (seeded), not the golden fill rule: filled weights make a generator
  whose images span +-180 and barely depend on w, which no embedding can fit; this one gives images
  with unit spread that change with w. ``w_avg`` is the mean of 512 mapped z, as training tracks it.
- ``stylegan2/vgg16-397923af.pth``: torchvision's VGG-16 ``features.*`` keys, filled by the fill rule.
- ``dva/pretrained_models/mobilenet_224_model_best_gdconv_external.pth.tar``: the landmark network in
  cunjian's ``{'state_dict': {'module.' + key}}`` layout, filled by the fill rule except its last
  BatchNorm, which is set so the 68 outputs are the ICT mean face laid out like an FFHQ crop plus
  image-dependent offsets of about 0.05 crop widths: fill-rule outputs scatter the 68 points over several
  crop widths, a "face" whose fitted yaw sits at the +-90 degree singularity.
- ``face_3dmm/ict_facekit/face_model.npz``: copied from FACE_ICT_DIR (the open ICT-FaceKit export).
- ``rignet/ffhq_rignet.safetensors``: an untrained RigNet bundle for that generator (pose,
  expression, illumination), written by the pack's own ``save_rignet``.
"""
from __future__ import annotations

import collections
import os
import pickle
import shutil
import sys
import types
from contextlib import contextmanager
from pathlib import Path

import torch

GENERATOR_FILE = Path("stylegan2/ffhq.pkl")
VGG_FILE = Path("stylegan2/vgg16-397923af.pth")
LANDMARK_FILE = Path("dva/pretrained_models/mobilenet_224_model_best_gdconv_external.pth.tar")
ICT_FILE = Path("face_3dmm/ict_facekit/face_model.npz")
RIGNET_FILE = Path("rignet/ffhq_rignet.safetensors")
GENERATOR_KWARGS = {"z_dim": 512, "c_dim": 0, "w_dim": 512, "img_resolution": 64, "img_channels": 3,
                    "mapping_kwargs": {"num_layers": 8, "layer_features": 64},
                    "synthesis_kwargs": {"channel_base": 4096, "channel_max": 64, "num_fp16_res": 0, "conv_clamp": None}}


def ict_dir() -> Path:
    return Path(os.environ.get("FACE_ICT_DIR", Path(__file__).resolve().parents[3] / "shared" / "data" / "ict_facekit"))


@torch.no_grad()
def tiny_generator(seed: int = 0):
    """The 64 px test generator (eval mode, no grad), w_avg set from 512 mapped z."""
    from facecontrol.models.stylegan2_nvlabs import Generator

    torch.manual_seed(seed)
    generator = Generator(**GENERATOR_KWARGS).eval().requires_grad_(False)
    z = torch.randn(512, generator.z_dim, generator=torch.Generator().manual_seed(seed + 1))
    generator.mapping.w_avg.copy_(generator.mapping(z, None)[:, 0].mean(0))
    return generator


def mean_face_landmarks_unit(model) -> torch.Tensor:
    """The ICT mean face's 68 landmarks placed like a face in an FFHQ crop, in the landmark net's [0,1] units."""
    points = model.lmk_mean[:, :2]
    iod = (points[36] - points[45]).norm()
    unit_per_cm = 0.3 / iod  # FFHQ crops: inter-ocular distance about 0.3 of the crop
    xy = (points - points.mean(0)) * unit_per_cm
    return torch.stack([0.5 + xy[:, 0], 0.52 - xy[:, 1]], -1)


@torch.no_grad()
def landmark_state(seed: int = 8) -> dict[str, torch.Tensor]:
    from facecontrol.face.ict_model import load_ict_model
    from facecontrol.models.mobilenet_gdconv import MobileNetGDConv

    net = MobileNetGDConv(136)
    net.load_state_dict(_fill(net, seed))
    net.eval()
    probe = torch.randn(4, 3, 224, 224, generator=torch.Generator().manual_seed(seed))
    spread = net(probe).std(0).mean()
    bn = net.linear1.bn
    scale = 0.05 / float(spread) * bn.weight / torch.sqrt(bn.running_var + bn.eps)
    base = mean_face_landmarks_unit(load_ict_model(ict_dir() / "landmarks_model.npz")).reshape(136)
    bn.running_mean.zero_()
    bn.running_var.fill_(1.0 - bn.eps)
    bn.weight.copy_(scale)
    bn.bias.copy_(base - scale * net.linear1.conv(net.linear7(net.base_net(probe))).flatten(1).mean(0))
    return {f"module.{k}": v for k, v in net.state_dict().items()}


def _fill(module: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    from golden_fixtures import _fill_module

    shapes = {k: {"shape": list(v.shape), "dtype": str(v.dtype).removeprefix("torch.")}
              for k, v in module.state_dict().items()}
    return _fill_module().fill_state_dict(shapes, seed)


# ----------------------------------------------------------------------------- NVlabs snapshot writer


class _Persistent:
    """Pickles as ``torch_utils.persistence._reconstruct_persistent_obj(meta)``, as NVlabs snapshots do."""

    def __init__(self, class_name: str, state: dict) -> None:
        self.meta = {"type": "class", "version": 6, "module_src": "# FaceControl test weights: no code here\n",
                     "class_name": class_name, "state": state}

    def __reduce__(self):
        return sys.modules["torch_utils.persistence"]._reconstruct_persistent_obj, (self.meta,)


def _persistent_tree(module: torch.nn.Module, init_kwargs: dict | None = None) -> _Persistent:
    state = {
        "training": False,
        "_parameters": collections.OrderedDict((k, v.detach().clone()) for k, v in module._parameters.items()),
        "_buffers": collections.OrderedDict(module._buffers),
        "_non_persistent_buffers_set": set(module._non_persistent_buffers_set),
        "_modules": collections.OrderedDict((name, _persistent_tree(child)) for name, child in module._modules.items()),
        "_init_args": (),
        "_init_kwargs": init_kwargs or {},
    }
    return _Persistent(type(module).__name__, state)


@contextmanager
def _stand_in_persistence():
    """Make the NVlabs reconstruct function picklable by reference, only while writing."""
    def _reconstruct_persistent_obj(meta):  # never called: only its name goes into the file
        raise RuntimeError("stand-in")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    package, module = types.ModuleType("torch_utils"), types.ModuleType("torch_utils.persistence")
    module._reconstruct_persistent_obj = _reconstruct_persistent_obj
    package.persistence = module
    saved = {name: sys.modules.get(name) for name in ("torch_utils", "torch_utils.persistence")}
    sys.modules.update({"torch_utils": package, "torch_utils.persistence": module})
    try:
        yield
    finally:
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous


def write_generator_pickle(path: Path, generator) -> None:
    record = _persistent_tree(generator, GENERATOR_KWARGS)
    snapshot = {"training_set_kwargs": None, "G": record, "D": None, "G_ema": record, "augment_pipe": None}
    path.parent.mkdir(parents=True, exist_ok=True)
    with _stand_in_persistence(), open(path, "wb") as handle:
        pickle.dump(snapshot, handle, protocol=4)


# ----------------------------------------------------------------------------- install


def _write(path: Path, make) -> None:
    if path.is_file():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    make(partial)
    partial.replace(path)


def install(model_root: Path) -> None:
    from facecontrol.models.rignet import RigNetBundle, save_rignet
    from facecontrol.pipelines.pie import VGGPerceptual

    root = Path(model_root)
    _write(root / GENERATOR_FILE, lambda p: write_generator_pickle(p, tiny_generator()))
    _write(root / VGG_FILE, lambda p: torch.save({f"features.{k}": v for k, v in _fill(VGGPerceptual().features, 7).items()}, p))
    _write(root / LANDMARK_FILE, lambda p: torch.save({"state_dict": landmark_state()}, p))
    _write(root / ICT_FILE, lambda p: shutil.copyfile(ict_dir() / "face_model.npz", p))
    generator = tiny_generator()
    torch.manual_seed(9)
    bundle = RigNetBundle(generator.num_ws, generator.w_dim, {"pose": 3, "expression": 53, "illumination": 27})
    _write(root / RIGNET_FILE, lambda p: save_rignet(bundle, p, {"note": "untrained test weights"}))
