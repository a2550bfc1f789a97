"""A small differentiable face generator built on the open ICT-FaceKit 3DMM, for tests and demos of PIE.

It behaves like a style generator: a mapping network takes z to w, W+ holds ``num_ws`` copies, and each
W+ layer feeds one group of face parameters, coarse layers the pose, middle ones the identity and the
expression, fine ones the appearance (light and skin colour), as StyleGAN's coarse/middle/fine layers
do. The parameters are rendered by the same ICT formation PIE regresses with (weak perspective camera,
Lambertian SH shading of a per-vertex albedo) over a grey background, so every image is a face whose
true pose, expression and light are known: :meth:`FaceGenerator.face_parameters` gives them, an
independent judge of what an edit did to the image.

Light carries only shading (the same SH coefficients for R, G and B) and the albedo carries the colour. The
albedo is darker around the brows, eyes and lips (a fixed pattern on the neutral mesh that moves with it): with
a uniform albedo only shading and the silhouette show where the features are, and a hard rasteriser passes no
gradient through the silhouette, so a head turn or an open jaw was hardly visible to a landmark network and hardly
reachable by an edit through it (measured: a +15 deg yaw edit moved the true yaw by -4 to +10 deg).

File (``.safetensors``, loadable by Load StyleGAN2): the module's state dict (mapping, per-layer heads,
their standardisation, the mesh arrays) and metadata ``{"format": "facecontrol-face-generator", "config":
json}`` with the sizes, the group layers and the expression names.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from ..face.ict_model import ICTFaceModel, ict_landmarks, ict_render
from .checkpoint import load_state_strict, read_state, reading_model_file
from .stylegan_interface import StyleGAN2Generator

FORMAT = "facecontrol-face-generator"
#: W+ layers feeding each parameter group (coarse -> fine)
GROUP_LAYERS: dict[str, tuple[int, ...]] = {
    "pose": (0, 1),
    "identity": (2, 3),
    "expression": (4, 5),
    "appearance": (6, 7),
}
#: the largest yaw, pitch and roll (radians) the generator draws
MAX_ANGLES = (math.radians(30), math.radians(15), math.radians(10))
SKIN = (0.78, 0.58, 0.48)  # mean albedo (RGB)
BACKGROUND = 0.45
IOD_OF_CROP = 0.2625  # inter-ocular distance as a share of the crop (FFHQ-like placement)
LANDMARK_CENTRE = (0.5, 0.52 * 0.875 + 0.0625)  # landmark centroid in crop units
#: darkened features: 68-landmark rows, darkening at the landmark, falloff radius (share of the eye distance)
FEATURES = (
    (tuple(range(17, 27)), 0.45, 0.07),  # brows
    (tuple(range(36, 48)), 0.6, 0.05),  # eyes
    (tuple(range(48, 60)), 0.35, 0.06),  # outer lips
)


def feature_shading(model: ICTFaceModel) -> torch.Tensor:
    """(V,) albedo multiplier of the neutral mesh: 1 on the skin, darker near the brows, eyes and lips."""
    iod = (model.lmk_mean[36] - model.lmk_mean[45]).norm()
    darkening = torch.zeros(model.num_vertices)
    for rows, depth, radius in FEATURES:
        distance = torch.cdist(model.mean, model.lmk_mean[list(rows)]).min(1).values
        darkening = torch.maximum(darkening, depth * torch.exp(-0.5 * (distance / (radius * iod)).square()))
    return 1 - darkening


def _group_size(group: str, num_identity: int, num_expression: int) -> int:
    return {"pose": 3, "identity": num_identity, "expression": num_expression, "appearance": 9 + 3}[group]


class FaceGenerator(StyleGAN2Generator):
    """z -> w (mapping MLP) -> W+ -> face parameters (per-layer heads) -> rendered ICT face in [-1,1]."""

    kind = "ict_face"

    def __init__(
        self,
        model: ICTFaceModel,
        faces: torch.Tensor,
        z_dim: int = 32,
        w_dim: int = 32,
        resolution: int = 64,
        mapping_layers: int = 3,
    ) -> None:
        super().__init__()
        self.face_model = model
        self.z_dim, self.w_dim, self.resolution = z_dim, w_dim, resolution
        self.num_ws = 1 + max(max(layers) for layers in GROUP_LAYERS.values())
        self.num_identity, self.num_expression = model.id_basis.shape[0], model.exp_basis.shape[0]
        self.register_buffer("faces", faces.long())
        self.mapping_net = nn.Sequential(
            *[
                m
                for i in range(mapping_layers)
                for m in (nn.Linear(z_dim if i == 0 else w_dim, w_dim), nn.LeakyReLU(0.2))
            ]
        )
        self.heads = nn.ModuleDict(
            {
                group: nn.ModuleList(nn.Linear(w_dim, self._size(group)) for _ in layers)
                for group, layers in GROUP_LAYERS.items()
            }
        )
        for group in GROUP_LAYERS:  # standardisation of each head's sum, set by calibrate()
            self.register_buffer(f"{group}_mean", torch.zeros(self._size(group)))
            self.register_buffer(f"{group}_std", torch.ones(self._size(group)))
        self.register_buffer("w_avg", torch.zeros(w_dim))
        self.register_buffer("feature_shade", feature_shading(model), persistent=False)  # derived from the mesh
        iod = (model.lmk_mean[36, :2] - model.lmk_mean[45, :2]).norm()
        scale = IOD_OF_CROP / iod
        centre = model.lmk_mean.mean(0)
        self.register_buffer(
            "camera",
            torch.stack([scale, LANDMARK_CENTRE[0] - scale * centre[0], LANDMARK_CENTRE[1] + scale * centre[1]]),
        )

    def _size(self, group: str) -> int:
        return _group_size(group, self.num_identity, self.num_expression)

    def config(self) -> dict:
        return {
            "z_dim": self.z_dim,
            "w_dim": self.w_dim,
            "resolution": self.resolution,
            "mapping_layers": len(self.mapping_net) // 2,
            "group_layers": GROUP_LAYERS,
            "exp_names": self.face_model.exp_names,
        }

    # ------------------------------------------------------------------ the interface

    def mapping(
        self, z: torch.Tensor, truncation_psi: float = 1.0, truncation_cutoff: int | None = None
    ) -> torch.Tensor:
        z = z * z.square().mean(1, keepdim=True).add(1e-8).rsqrt()
        w = self.mapping_net(z.to(self.w_avg))
        ws = w.unsqueeze(1).expand(-1, self.num_ws, -1)
        return self.truncate(ws, truncation_psi, truncation_cutoff)

    def synthesis(self, ws: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        """W+ (B,num_ws,w_dim) or w (B,w_dim) -> (B,3,R,R) in [-1,1]."""
        theta = self.face_parameters(ws)
        image, mask = ict_render(self.face_model, self.faces, theta, self.resolution)
        return (torch.where(mask > 0, image, torch.full_like(image, BACKGROUND)) * 2 - 1).float()

    def group_layers(self) -> dict[str, tuple[int, ...]]:
        """The layers that feed each PIE group by construction (appearance: light and skin colour)."""
        return {
            "pose": GROUP_LAYERS["pose"],
            "expression": GROUP_LAYERS["expression"],
            "illumination": GROUP_LAYERS["appearance"],
        }

    # ------------------------------------------------------------------ parameters

    def _standardised(self, ws: torch.Tensor, group: str) -> torch.Tensor:
        raw = sum(head(ws[:, layer]) for head, layer in zip(self.heads[group], GROUP_LAYERS[group]))
        return (raw - getattr(self, f"{group}_mean")) / getattr(self, f"{group}_std")

    def face_parameters(self, ws: torch.Tensor) -> dict[str, torch.Tensor]:
        """The true theta of the rendered faces, in :class:`ICTFaceFormation`'s convention (identity padded
        to the model's size, scale and translation relative to the image size)."""
        if ws.ndim == 2:
            ws = ws.unsqueeze(1).expand(-1, self.num_ws, -1)
        ws = ws.to(self.w_avg)
        batch = ws.shape[0]
        angles = torch.tanh(self._standardised(ws, "pose") / 2) * ws.new_tensor(MAX_ANGLES)
        identity = self._standardised(ws, "identity")
        expression = torch.sigmoid(1.5 * self._standardised(ws, "expression") - 2.5)
        appearance = self._standardised(ws, "appearance")
        sh = appearance[:, :9] * ws.new_tensor([0.12, 0.2, 0.1, 0.2, 0.04, 0.04, 0.04, 0.04, 0.04])
        light = sh.unsqueeze(1).expand(-1, 3, -1).reshape(batch, 27)  # achromatic: shading only
        colour = ws.new_tensor(SKIN) * (1 + 0.12 * torch.tanh(appearance[:, 9:]))
        albedo = colour.unsqueeze(1) * self.feature_shade.to(colour)[None, :, None]
        camera = self.camera.to(ws)
        return {
            "identity": identity,
            "expression": expression,
            "angles": angles,
            "scale": camera[:1].expand(batch, 1),
            "translation": camera[1:].expand(batch, 2),
            "light": light,
            "albedo": albedo,
            "skin": colour,
        }

    def landmarks(self, ws: torch.Tensor) -> torch.Tensor:
        """(B,68,2) true landmark pixels of the rendered faces."""
        return ict_landmarks(self.face_model, self.face_parameters(ws), self.resolution)

    @torch.no_grad()
    def calibrate(self, count: int = 2048, seed: int = 0) -> "FaceGenerator":
        """Standardise every head's output over mapped z and set ``w_avg`` (the mean w)."""
        rng = torch.Generator().manual_seed(seed)
        ws = self.mapping(torch.randn(count, self.z_dim, generator=rng))
        self.w_avg.copy_(ws[:, 0].mean(0))
        for group in GROUP_LAYERS:
            getattr(self, f"{group}_mean").zero_()
            getattr(self, f"{group}_std").fill_(1.0)
            raw = self._standardised(ws, group)
            getattr(self, f"{group}_mean").copy_(raw.mean(0))
            getattr(self, f"{group}_std").copy_(raw.std(0).clamp_min(1e-6))
        return self


def build_face_generator(
    model: ICTFaceModel, seed: int = 0, resolution: int = 64, num_identity: int = 20, z_dim: int = 32, w_dim: int = 32
) -> FaceGenerator:
    """A generator with seeded random mapping and heads over ``model``'s first ``num_identity`` identity shapes."""
    if model.triangles is None:
        raise ValueError("the ICT model has no triangles: build the generator from face_model.npz")
    small = ICTFaceModel(model.mean, model.id_basis[:num_identity], model.exp_basis, model.exp_names, model.lmk68)
    faces = model.triangles_skin if model.triangles_skin is not None else model.triangles
    torch.manual_seed(seed)
    generator = FaceGenerator(small, faces, z_dim, w_dim, resolution)
    return generator.calibrate(seed=seed).eval().requires_grad_(False)


def save_face_generator(generator: FaceGenerator, path: str | Path) -> None:
    from safetensors.torch import save_file

    state = {key: value.detach().cpu().contiguous() for key, value in generator.state_dict().items()}
    save_file(state, str(path), metadata={"format": FORMAT, "config": json.dumps(generator.config())})


def is_face_generator_file(path: str | Path) -> bool:
    """Whether ``path`` is a safetensors file written by :func:`save_face_generator`."""
    if Path(path).suffix != ".safetensors":
        return False
    from safetensors import safe_open

    with reading_model_file(path, "safetensors"), safe_open(str(path), "pt") as handle:
        return (handle.metadata() or {}).get("format") == FORMAT


def load_face_generator(path: str | Path) -> FaceGenerator:
    """The generator of a file of :func:`save_face_generator`, ``load_info`` as the StyleGAN2 loaders set it."""
    from safetensors import safe_open

    with reading_model_file(path, "safetensors"), safe_open(str(path), "pt") as handle:
        metadata = handle.metadata() or {}
    if metadata.get("format") != FORMAT or "config" not in metadata:
        raise ValueError(f"{path} is not a FaceControl face generator (metadata format={metadata.get('format')!r})")
    config = json.loads(metadata["config"])
    state = read_state(path)
    model = ICTFaceModel(
        state["face_model.mean"],
        state["face_model.id_basis"],
        state["face_model.exp_basis"],
        config["exp_names"],
        state["face_model.lmk68"],
    )
    generator = FaceGenerator(
        model,
        state["faces"],
        int(config["z_dim"]),
        int(config["w_dim"]),
        int(config["resolution"]),
        int(config["mapping_layers"]),
    )
    load_state_strict(generator, _with_derived(generator, state), str(path))
    generator.eval().requires_grad_(False)
    generator.load_info = {
        "kind": FaceGenerator.kind,
        "resolution": generator.resolution,
        "num_ws": generator.num_ws,
        "w_dim": generator.w_dim,
        "z_dim": generator.z_dim,
    }
    return generator


def _with_derived(generator: FaceGenerator, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The saved state plus the model's buffers that are derived from the saved ones (landmark rows)."""
    derived = {f"face_model.{key}": value for key, value in generator.face_model.state_dict().items()}
    return {**derived, **state}
