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
- ``face_3dmm/BFM/BFM_model_front.mat``: the BFM (licence-restricted, not downloadable) cannot ship, so this
  file has Deep3DFaceRecon's layout (meanshape, idBase 80, exBase 64, meantex, texBase 80, 1-based tri,
  point_buf, keypoints, skinmask) filled with the open ICT-FaceKit mesh in BFM units (decimetres): its
  100 identity shapes give the first 80 columns of idBase, its 53 expressions the first 53 of exBase (the
  other 11 are zero), a skin-coloured meantex, and texBase colour patterns shaped like the identity offsets.
  A face-shaped mesh, so renders and landmarks of the BFM path look like faces.
- ``face_3dmm/deep3dfacerecon/epoch_20.pth``: ``{'net_recon': state}`` of the ResNet-50 ReconNet, filled by the
  fill rule except the seven 1x1 heads, rescaled so that on the test generator's faces each coefficient
  has mean 0 and a small spread (about 5 degrees of pose): fill-rule heads give angles of hundreds of radians.
"""

from __future__ import annotations

import collections
import pickle
import shutil
import sys
import types
from contextlib import contextmanager
from pathlib import Path

import torch

from facecontrol import model_names as names

from media import ict_facekit_dir

GENERATOR_FILE = Path("stylegan2/ffhq.pkl")
VGG_FILE = Path(names.PIE_VGG16)
LANDMARK_FILE = Path(names.DVA_LNDNET)
ICT_FILE = Path(names.ICT_FACE_MODEL)
RIGNET_FILE = Path("rignet/ffhq_rignet.safetensors")
BFM_FILE = Path(names.PIE_BFM)
D3DFR_FILE = Path(names.PIE_D3DFR)
# spread of each Deep3DFaceRecon head's outputs on the test generator's faces: id, exp, tex, angle, gamma, txy, tz
HEAD_SPREAD = (0.3, 0.2, 0.3, 0.08, 0.05, 0.03, 0.05)
CM_TO_BFM = 0.1  # the BFM front model is in decimetres
GENERATOR_KWARGS = {
    "z_dim": 512,
    "c_dim": 0,
    "w_dim": 512,
    "img_resolution": 64,
    "img_channels": 3,
    "mapping_kwargs": {"num_layers": 8, "layer_features": 64},
    "synthesis_kwargs": {"channel_base": 4096, "channel_max": 64, "num_fp16_res": 0, "conv_clamp": None},
}


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
    base = mean_face_landmarks_unit(load_ict_model(ict_facekit_dir() / "landmarks_model.npz")).reshape(136)
    bn.running_mean.zero_()
    bn.running_var.fill_(1.0 - bn.eps)
    bn.weight.copy_(scale)
    bn.bias.copy_(base - scale * net.linear1.conv(net.linear7(net.base_net(probe))).flatten(1).mean(0))
    return {f"module.{k}": v for k, v in net.state_dict().items()}


def _fill(module: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    from golden_fixtures import _fill_module

    shapes = {
        k: {"shape": list(v.shape), "dtype": str(v.dtype).removeprefix("torch.")}
        for k, v in module.state_dict().items()
    }
    return _fill_module().fill_state_dict(shapes, seed)


# ----------------------------------------------------------------------------- BFM layout and Deep3DFaceRecon


def ict_bfm_arrays() -> dict:
    """The arrays of a ``BFM_model_front.mat`` built from the ICT-FaceKit mesh (see the module docstring)."""
    import numpy as np

    with np.load(ict_facekit_dir() / "face_model.npz") as data:
        mean, id_basis, exp_basis = data["mean"], data["id_basis"], data["exp_basis"]
        faces, landmarks = data["triangles_skin"].astype(np.int64), data["lmk68"].astype(np.int64)
    num_vertices = mean.shape[0]
    flat = lambda basis: (basis.reshape(basis.shape[0], -1).T * CM_TO_BFM).astype(np.float32)  # (3V, K)
    ex_base = np.zeros((3 * num_vertices, 64), np.float32)
    ex_base[:, : exp_basis.shape[0]] = flat(exp_basis)
    patterns = flat(id_basis[:80])
    tex_base = patterns / np.abs(patterns).max(0, keepdims=True) * 20.0
    skin = np.array([200.0, 150.0, 130.0], np.float32)
    return {
        "meanshape": (mean.reshape(1, -1) * CM_TO_BFM).astype(np.float32),
        "idBase": flat(id_basis[:80]),
        "exBase": ex_base,
        "meantex": np.tile(skin, num_vertices).reshape(1, -1),
        "texBase": tex_base.astype(np.float32),
        "tri": (faces + 1).astype(np.float32),
        "point_buf": _point_buf(faces, num_vertices).astype(np.float32),
        "keypoints": (landmarks + 1).reshape(1, 68).astype(np.float32),
        "skinmask": np.ones((1, num_vertices), np.float32),
    }


def _point_buf(faces, num_vertices: int):
    """1-based adjacent faces per vertex, padded with F + 1 (Deep3DFaceRecon's layout)."""
    import numpy as np

    adjacent = [[] for _ in range(num_vertices)]
    for index, face in enumerate(faces):
        for vertex in face:
            adjacent[vertex].append(index + 1)
    width = max(len(a) for a in adjacent)
    return np.array([a + [len(faces) + 1] * (width - len(a)) for a in adjacent])


def write_ict_bfm(path: Path) -> None:
    from scipy.io import savemat

    savemat(str(path), ict_bfm_arrays())


@torch.no_grad()
def regressor_probes(count: int = 8) -> torch.Tensor:
    """What the test regressor is calibrated on: the test generator's faces at 224, in [0,1]."""
    generator = tiny_generator()
    z = torch.randn(count, generator.z_dim, generator=torch.Generator().manual_seed(21))
    images = generator(z, None, truncation_psi=0.7, noise_mode="const")
    return ((torch.nn.functional.interpolate(images, size=(224, 224), mode="bilinear") + 1) / 2).clamp(0, 1)


@torch.no_grad()
def calibrated_regressor(net_recon: str = "resnet50", seed: int = 11):
    """A fill-rule Deep3DFaceRecon ReconNet whose heads give small, image-dependent, zero-mean coefficients."""
    from facecontrol.models.d3dfr import Deep3DFaceReconRegressor, _pooled_features

    net = Deep3DFaceReconRegressor(net_recon)
    net.load_state_dict(_fill(net, seed))
    net.eval()
    features = _pooled_features(net.backbone, regressor_probes())
    for head, spread in zip(net.final_layers, HEAD_SPREAD):
        raw = torch.nn.functional.conv2d(features, head.weight).flatten(1)  # (N, n)
        gain = spread / raw.std(0).clamp_min(1e-12)
        head.weight.mul_(gain.view(-1, 1, 1, 1))
        head.bias.copy_(-(raw * gain).mean(0))
    return net


# ----------------------------------------------------------------------------- NVlabs snapshot writer


class _Persistent:
    """Pickles as ``torch_utils.persistence._reconstruct_persistent_obj(meta)``, as NVlabs snapshots do."""

    def __init__(self, class_name: str, state: dict) -> None:
        self.meta = {
            "type": "class",
            "version": 6,
            "module_src": "# FaceControl test weights: no code here\n",
            "class_name": class_name,
            "state": state,
        }

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
    with stand_in_modules({"torch_utils": package, "torch_utils.persistence": module}):
        yield


@contextmanager
def stand_in_modules(modules: dict[str, types.ModuleType]):
    """``modules`` in sys.modules while the block runs (so pickles refer to them by name), then what was there."""
    saved = {name: sys.modules.get(name) for name in modules}
    sys.modules.update(modules)
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
    from facecontrol.models.vgg_perceptual import VGGPerceptual

    root = Path(model_root)
    _write(root / GENERATOR_FILE, lambda p: write_generator_pickle(p, tiny_generator()))
    _write(
        root / VGG_FILE,
        lambda p: torch.save({f"features.{k}": v for k, v in _fill(VGGPerceptual().features, 7).items()}, p),
    )
    _write(root / LANDMARK_FILE, lambda p: torch.save({"state_dict": landmark_state()}, p))
    _write(root / ICT_FILE, lambda p: shutil.copyfile(ict_facekit_dir() / "face_model.npz", p))
    generator = tiny_generator()
    torch.manual_seed(9)
    bundle = RigNetBundle(generator.num_ws, generator.w_dim, {"pose": 3, "expression": 53, "illumination": 27})
    _write(root / RIGNET_FILE, lambda p: save_rignet(bundle, p, {"note": "untrained test weights"}))
    _write(root / BFM_FILE, write_ict_bfm)
    _write(root / D3DFR_FILE, lambda p: torch.save({"net_recon": calibrated_regressor().state_dict()}, p))
