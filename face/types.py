"""Data carried between the face nodes: detected faces and crop transforms, per frame.

Everything here is plain NumPy so the types pickle, print and test without ComfyUI or torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Face:
    """One detected face in one frame, in that frame's pixel coordinates."""

    box: np.ndarray  # (4,) x1, y1, x2, y2
    score: float
    lm68: np.ndarray | None  # (68, 2) iBUG-68; None when only a box and 5 points are known
    lm5: np.ndarray  # (5, 2) eye centres (image left, right), nose tip, mouth corners (image left, right)
    backend: str
    lm478: np.ndarray | None = None  # (478, 3) mediapipe x, y in pixels, z in pixels relative to the face
    blendshapes: np.ndarray | None = None  # (52,) mediapipe ARKit blendshape scores
    head_transform: np.ndarray | None = None  # (4, 4) mediapipe facial transformation matrix

    @property
    def area(self) -> float:
        return float(max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1]))

    @property
    def center(self) -> np.ndarray:
        return np.array([(self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2])

    def interocular(self) -> float:
        """Outer eye-corner distance (iBUG 36-45), the usual normaliser for landmark errors."""
        if self.lm68 is None:
            return float(np.linalg.norm(self.lm5[1] - self.lm5[0]))
        return float(np.linalg.norm(self.lm68[45] - self.lm68[36]))


@dataclass
class FaceSet:
    """The selected face of every frame of an IMAGE batch (the ComfyUI type FACES)."""

    faces: list[Face | None]
    image_size: tuple[int, int]  # (H, W)
    backend: str
    blendshape_names: list[str] = field(default_factory=list)
    filled_from: dict[int, int] = field(default_factory=dict)  # frame -> frame whose face was reused
    found_unselected: dict[int, int] = field(default_factory=dict)  # frame -> faces found there, none selected

    def __len__(self) -> int:
        return len(self.faces)

    @property
    def missing(self) -> list[int]:
        return [i for i, f in enumerate(self.faces) if f is None]

    def require(self, frame: int, input_name: str = "faces") -> Face:
        face = self.faces[frame]
        if face is None:
            raise ValueError(f"no face in frame {frame} of '{input_name}'")
        return face

    def lm68(self, input_name: str = "faces") -> np.ndarray:
        """(N, 68, 2) landmarks; raises when a frame has no face or no 68 points."""
        out = []
        for i in range(len(self)):
            face = self.require(i, input_name)
            if face.lm68 is None:
                raise ValueError(
                    f"the face in frame {i} of '{input_name}' has no 68 landmarks ({face.backend} found only a box)"
                )
            out.append(face.lm68)
        return np.stack(out)

    def lm5(self, input_name: str = "faces") -> np.ndarray:
        return np.stack([self.require(i, input_name).lm5 for i in range(len(self))])

    def boxes(self, input_name: str = "faces") -> np.ndarray:
        return np.stack([self.require(i, input_name).box for i in range(len(self))])

    def describe(self) -> str:
        found = len(self) - len(self.missing)
        text = f"{self.backend}: face in {found} of {len(self)} frames"
        if self.missing:
            text += f"; no face in frames {self.missing}"
        if self.filled_from:
            text += f"; frames {sorted(self.filled_from)} reuse the nearest detected face"
        return text


@dataclass
class FaceCrop:
    """Per-frame affine transforms between original frames and aligned crops (the ComfyUI type FACE_CROP).

    forward[i] maps frame pixels to crop pixels (2x3, cv2.warpAffine convention); inverse[i] maps back.
    """

    forward: np.ndarray  # (N, 2, 3) float64
    inverse: np.ndarray  # (N, 2, 3) float64
    crop_size: int
    image_size: tuple[int, int]  # (H, W) of the original frames
    convention: str  # "ffhq", "arcface256", "faceadapter512"

    def __len__(self) -> int:
        return len(self.forward)

    def frame(self, i: int) -> "FaceCrop":
        return FaceCrop(
            self.forward[i : i + 1], self.inverse[i : i + 1], self.crop_size, self.image_size, self.convention
        )

    def chain(self, then: "FaceCrop") -> "FaceCrop":
        """This crop followed by a crop of it: frame -> self's crop -> then's crop."""
        fwd = np.stack([compose_affine(t, f) for f, t in zip(self.forward, then.forward)])
        return FaceCrop(fwd, invert_affines(fwd), then.crop_size, self.image_size, then.convention)


def compose_affine(second: np.ndarray, first: np.ndarray) -> np.ndarray:
    """2x3 affine applying `first` then `second`."""
    a = np.vstack([first, [0.0, 0.0, 1.0]])
    b = np.vstack([second, [0.0, 0.0, 1.0]])
    return (b @ a)[:2]


def invert_affines(mats: np.ndarray) -> np.ndarray:
    full = np.concatenate([mats, np.tile(np.array([[[0.0, 0.0, 1.0]]]), (len(mats), 1, 1))], axis=1)
    return np.linalg.inv(full)[:, :2]


def apply_affine(mat: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map (..., 2) points through a 2x3 affine."""
    return points @ mat[:, :2].T + mat[:, 2]


def head_angles_degrees(transform: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees from mediapipe's 4x4 facial transformation matrix."""
    rot = transform[:3, :3] / np.linalg.norm(transform[0, :3])
    yaw = np.degrees(np.arctan2(rot[0, 2], rot[2, 2]))
    pitch = np.degrees(np.arcsin(np.clip(-rot[1, 2], -1.0, 1.0)))
    roll = np.degrees(np.arctan2(rot[1, 0], rot[1, 1]))
    return float(yaw), float(pitch), float(roll)
