"""Face-Adapter Tables 1-2 over ComfyUI: reenactment on VoxCeleb1 test frames, swapping on FaceForensics++.

    python scripts/run_face_adapter.py --dataset DATA --out results/fa \
        --server http://gpu1:8188 --server http://gpu2:8188 \
        --models-dir /path/to/ComfyUI/models

DATA holds the test sets as frames (as the papers' evaluations cut them):

    voxceleb1/<identity>/<video>/<frame>.png|jpg   reenactment: same identity (source and driver frames of one
                                                  video, the driver is the ground truth) and cross identity
    ffpp/<video>/<frame>.png|jpg                   swapping: FaceForensics++ original sequences, one folder a video
    ffpp_pairs.json                                optional [[target, source], ...] (FF++'s split files); default:
                                                  each video takes its identity from the next one

Every sample queues the shipped workflow (face_adapter_reenactment, face_adapter_swap) with the sample's photos
uploaded to the server, as a user would; the result pasted into the photo is scored here:

- same identity: PSNR and LPIPS against the driver frame, FID of the results against the driver frames;
- both: CSIM (cosine of the identity network's embeddings of result and source), and Exp / Pose / Gaze, the mean
  Euclidean distance of Face-Adapter's D3DFR expression (64), angle (3, radians) and gaze (4) coefficients
  between result and driver;
- swapping: ID retrieval (the result's nearest face among the source videos' frames must be its source video)
  and Exp / Pose / Gaze against the target frame.

The paper used CurricularFace for CSIM; the identity network used here is named in the table.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
import run_dataset as rd

FA_TABLE1_SAME = {
    "PSNR": 22.36,
    "LPIPS": 0.1281,
    "FID": 29.27,
    "Exp": 3.24,
    "Pose": 0.0243,
    "Gaze": 0.0415,
    "CSIM": 0.7146,
}
FA_TABLE1_CROSS = {"Exp": 6.45, "Pose": 0.0355, "Gaze": 0.0543, "CSIM": 0.6429, "FID": 41.09}
FA_TABLE2_SWAP = {"ID retrieval": 96.47, "Pose": 0.0319, "Exp": 6.66, "Gaze": 0.0607}
REENACT_WORKFLOW, SWAP_WORKFLOW = "face_adapter_reenactment", "face_adapter_swap"


# ---------------------------------------------------------------- the dataset


def videos(root: Path) -> dict[tuple[str, str], list[Path]]:
    """(identity, video) -> sorted frames, for voxceleb1/<identity>/<video>/ ."""
    out = {}
    for identity in sorted(p for p in root.iterdir() if p.is_dir()):
        for video in sorted(p for p in identity.iterdir() if p.is_dir()):
            frames = rd.image_files(video)
            if frames:
                out[(identity.name, video.name)] = frames
    return out


def reenactment_samples(root: Path, same: int, cross: int, rng: random.Random) -> list[rd.Sample]:
    vids = videos(root)
    multi = [k for k, v in vids.items() if len(v) >= 2]
    identities = sorted({k[0] for k in vids})
    samples = []
    for i in range(same if multi else 0):
        key = rng.choice(multi)
        source, driver = rng.sample(vids[key], 2)
        samples.append(
            rd.Sample(
                f"same_{i:04d}",
                {"source": str(source), "driver": str(driver)},
                {"kind": "same", "source_id": key[0], "driver_id": key[0]},
            )
        )
    for i in range(cross if len(identities) >= 2 else 0):
        a, b = rng.sample(identities, 2)
        source = rng.choice([f for k, v in vids.items() if k[0] == a for f in v])
        driver = rng.choice([f for k, v in vids.items() if k[0] == b for f in v])
        samples.append(
            rd.Sample(
                f"cross_{i:04d}",
                {"source": str(source), "driver": str(driver)},
                {"kind": "cross", "source_id": a, "driver_id": b},
            )
        )
    return samples


def evenly(frames: list[Path], count: int) -> list[Path]:
    if count >= len(frames):
        return list(frames)
    return [frames[round(i * (len(frames) - 1) / max(1, count - 1))] for i in range(count)]


def swap_samples(root: Path, pairs_file: Path, frames_per_video: int, max_pairs: int | None) -> list[rd.Sample]:
    vids = {p.name: rd.image_files(p) for p in sorted(root.iterdir()) if p.is_dir() and rd.image_files(p)}
    names = sorted(vids)
    if pairs_file.is_file():
        pairs = [tuple(map(str, p)) for p in json.loads(pairs_file.read_text())]
    else:
        pairs = [(names[i], names[(i + 1) % len(names)]) for i in range(len(names))] if len(names) >= 2 else []
    samples = []
    for target, source in pairs[:max_pairs]:
        if target not in vids or source not in vids:
            raise SystemExit(f"{pairs_file}: pair ({target}, {source}) names a video missing from {root}")
        for j, frame in enumerate(evenly(vids[target], frames_per_video)):
            samples.append(
                rd.Sample(
                    f"swap_{target}_{source}_{j:02d}",
                    {"source": str(vids[source][0]), "target": str(frame)},
                    {"kind": "swap", "source_id": source, "target_id": target},
                )
            )
    return samples


def gallery(root: Path, labels: set[str], per_video: int) -> list[tuple[str, Path]]:
    """The ID-retrieval gallery: ``per_video`` evenly spaced frames of each source video."""
    return [(name, f) for name in sorted(labels) for f in evenly(rd.image_files(root / name), per_video)]


# ---------------------------------------------------------------- the paper


class FaceAdapterPaper(rd.Paper):
    name = "face_adapter"

    def __init__(self, nets: rd.Networks, steps: int | None, gallery_frames: list[tuple[str, Path]]) -> None:
        self.nets, self.steps, self.gallery_frames = nets, steps, gallery_frames
        self._faces: dict[str, Any] = {}

    def prompt(self, sample: rd.Sample, uploaded: dict[str, str], server: rd.Server) -> tuple[dict, dict[str, str]]:
        swap = sample.info["kind"] == "swap"
        prompt = rd.default_workflow(SWAP_WORKFLOW if swap else REENACT_WORKFLOW)
        prompt[rd.node_titled(prompt, "LoadImage", "source")]["inputs"]["image"] = uploaded["source"]
        other = (
            rd.node_titled(prompt, "LoadImage", "target")
            if swap
            else rd.node_titled(prompt, "LoadImage", "driving", "driver")
        )
        prompt[other]["inputs"]["image"] = uploaded["target" if swap else "driver"]
        rd.set_inputs(prompt, "FaceControlDetectFaces", select="largest")  # test frames hold one face
        if self.steps:
            rd.set_inputs(prompt, "KSampler", steps=self.steps)
        return prompt, {"result": rd.save_node_fed_by(prompt, "FaceControlPasteBack")}

    # -- scoring one sample

    def geometry(self, path: str | Path, rgb: np.ndarray):
        key = str(path)
        if key not in self._faces:
            self._faces[key] = self.nets.face(rgb)
        return self._faces[key]

    def embed(self, rgb: np.ndarray, faces) -> list[float] | None:
        net = self.nets.identity
        if net is None:
            return None
        kw = {} if faces is None else {"boxes": faces.boxes(), "lm5": faces.lm5(), "lm68": faces.lm68()}
        return net.embed(rgb[None], **kw)[0].tolist()

    def score(self, sample: rd.Sample, outputs: dict[str, list[Path]]) -> dict[str, Any]:
        from facecontrol.pipelines import metrics

        result = rd.read_rgb(outputs["result"][0])
        reference_role = "target" if sample.info["kind"] == "swap" else "driver"
        reference = rd.read_rgb(sample.files[reference_role])
        source = rd.read_rgb(sample.files["source"])
        ref_faces = self.geometry(sample.files[reference_role], reference)
        found = self.nets.face(result)
        res_faces = found or ref_faces  # a result without a detectable face is measured where the driver's is
        row: dict[str, Any] = {"kind": sample.info["kind"], "result_face_found": found is not None}
        if sample.info["kind"] == "same":
            row.update(self.pixel_scores(result, reference))
        src_faces = self.geometry(sample.files["source"], source)
        if res_faces is not None:
            row["embedding"] = self.embed(result, res_faces)
        if src_faces is not None and row.get("embedding") is not None:
            import torch

            row["CSIM"] = float(
                metrics.csim(torch.tensor([row["embedding"]]), torch.tensor([self.embed(source, src_faces)]))[0]
            )
        if self.nets.d3dfr is not None and res_faces is not None and ref_faces is not None:
            a = metrics.d3dfr_coefficients(self.nets.d3dfr, result[None], res_faces.lm5())
            b = metrics.d3dfr_coefficients(self.nets.d3dfr, reference[None], ref_faces.lm5())
            row.update({k: float(v[0]) for k, v in metrics.coefficient_errors(a, b).items()})
        return row

    def pixel_scores(self, result: np.ndarray, reference: np.ndarray) -> dict[str, float]:
        import cv2

        from facecontrol.pipelines import metrics

        if reference.shape != result.shape:
            reference = cv2.resize(reference, (result.shape[1], result.shape[0]), interpolation=cv2.INTER_AREA)
        x, y = rd.to_unit(result), rd.to_unit(reference)
        out = {"PSNR": float(metrics.psnr(x, y)[0])}
        if self.nets.lpips is not None:
            out["LPIPS"] = float(metrics.lpips(self.nets.lpips, x, y)[0])
        return out

    # -- the tables

    def fid(self, results: list[Path], reals: list[Path]) -> float | None:
        from facecontrol.pipelines import metrics

        if self.nets.fid is None or len(results) < 2 or len(reals) < 2:
            return None
        feats = [
            metrics.fid_features(self.nets.fid, torch_batch([rd.read_rgb(p) for p in paths]))
            for paths in (results, reals)
        ]
        return metrics.fid(*feats)

    def id_retrieval(self, rows: list[dict], samples: dict[str, rd.Sample]) -> float | None:
        import torch

        from facecontrol.pipelines import metrics

        queries = [(r["embedding"], samples[r["sample"]].info["source_id"]) for r in rows if r.get("embedding")]
        if not queries or self.nets.identity is None or not self.gallery_frames:
            return None
        embedded = []
        for label, path in self.gallery_frames:
            rgb = rd.read_rgb(path)
            vector = self.embed(rgb, self.geometry(path, rgb))
            if vector is not None:
                embedded.append((vector, label))
        return metrics.id_retrieval(
            torch.tensor([q[0] for q in queries]),
            [q[1] for q in queries],
            torch.tensor([g[0] for g in embedded]),
            [g[1] for g in embedded],
        )

    def table(self, rows: list[dict]) -> list[rd.Table]:
        samples = self.samples
        ok = [r for r in rows if r.get("status") == "ok"]
        kinds = {k: [r for r in ok if r.get("kind") == k] for k in ("same", "cross", "swap")}
        tables = []
        for kind, title, paper, columns in (
            ("same", "Table 1, VoxCeleb1 same-identity reenactment", FA_TABLE1_SAME, list(FA_TABLE1_SAME)),
            ("cross", "Table 1, VoxCeleb1 cross-identity reenactment", FA_TABLE1_CROSS, list(FA_TABLE1_CROSS)),
        ):
            group = kinds[kind]
            if not group and not any(s.info["kind"] == kind for s in samples.values()):
                continue
            ours = {c: rd.mean(r.get(c) for r in group) for c in columns}
            ours["FID"] = self.fid(
                [self.out_dir / r["outputs"]["result"][0] for r in group],
                [Path(samples[r["sample"]].files["driver"]) for r in group],
            )
            tables.append(self._table(title, columns, paper, ours, group, kind, rows))
        swaps = kinds["swap"]
        if swaps or any(s.info["kind"] == "swap" for s in samples.values()):
            columns = list(FA_TABLE2_SWAP)
            ours = {c: rd.mean(r.get(c) for r in swaps) for c in columns}
            ours["ID retrieval"] = self.id_retrieval(swaps, samples)
            tables.append(
                self._table("Table 2, FaceForensics++ swapping", columns, FA_TABLE2_SWAP, ours, swaps, "swap", rows)
            )
        return tables

    def _table(self, title, columns, paper, ours, group, kind, rows) -> rd.Table:
        failed = [r for r in rows if r.get("status") != "ok" and self.samples[r["sample"]].info["kind"] == kind]
        no_face = sum(1 for r in group if not r.get("result_face_found"))
        identity = getattr(self.nets.identity, "name", "unavailable")
        notes = [
            f"{len(group)} sample(s) scored, {len(failed)} failed; {no_face} result(s) with no detectable face "
            "(measured where the driver's, or for a swap the target's, face is)",
            f"CSIM and ID retrieval use {identity} (the paper: CurricularFace)",
            "Exp / Pose / Gaze: Face-Adapter's D3DFR (d3dfr_res50_nofc.pth) on the 256 ArcFace-template crops"
            if self.nets.d3dfr is not None
            else "Exp / Pose / Gaze: not measured (Face-Adapter's D3DFR file missing)",
        ]
        notes += [f"{k} unavailable: {v}" for k, v in self.nets.missing.items()]
        return rd.Table(
            title,
            ["", *columns],
            [
                ["Face-Adapter (paper)", *[paper[c] for c in columns]],
                [f"this run ({len(group)})", *[ours.get(c) for c in columns]],
            ],
            notes,
        )


def torch_batch(images: list[np.ndarray]):
    """(N,3,H,W) [0,1] of equally sized images (others resized to the first's size)."""
    import cv2
    import torch

    h, w = images[0].shape[:2]
    return torch.cat([rd.to_unit(i if i.shape[:2] == (h, w) else cv2.resize(i, (w, h))) for i in images])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    rd.common_arguments(parser)
    parser.add_argument("--same", type=int, default=1000, help="same-identity reenactment samples (paper: 1000 frames)")
    parser.add_argument("--cross", type=int, default=1000, help="cross-identity reenactment samples")
    parser.add_argument("--swap-frames", type=int, default=10, help="frames per FaceForensics++ target video")
    parser.add_argument("--swap-pairs", type=int, default=None, help="use only the first N pairs")
    parser.add_argument("--gallery-frames", type=int, default=10, help="ID-retrieval gallery frames per source video")
    parser.add_argument(
        "--steps", type=int, default=None, help="KSampler steps (default: the workflow's, the paper's 25)"
    )
    args = parser.parse_args(argv)
    resolve = rd.resolver(args.models_dir)
    nets = rd.Networks(resolve, args.identity)
    ffpp = args.dataset / "ffpp"

    def make() -> list[rd.Sample]:
        rng = random.Random(args.seed)
        out = []
        if (args.dataset / "voxceleb1").is_dir():
            out += reenactment_samples(args.dataset / "voxceleb1", args.same, args.cross, rng)
        if ffpp.is_dir():
            out += swap_samples(ffpp, args.dataset / "ffpp_pairs.json", args.swap_frames, args.swap_pairs)
        return out

    samples = rd.load_plan(args.out, make)
    sources = {s.info["source_id"] for s in samples if s.info["kind"] == "swap"}
    paper = FaceAdapterPaper(nets, args.steps, gallery(ffpp, sources, args.gallery_frames) if sources else [])
    paper.samples, paper.out_dir = {s.id: s for s in samples}, args.out
    import facecontrol.model_names as names

    header = [
        "# Face-Adapter (Han et al. 2024) Tables 1-2, reproduced through ComfyUI",
        *rd.weights_notes(
            resolve,
            [names.FA_D3DFR, names.METRIC_LPIPS_ALEX, names.METRIC_ALEXNET, names.METRIC_FID_INCEPTION],
            args.weights_label,
        ),
    ]
    return rd.main_run(paper, args, lambda: samples, header)


if __name__ == "__main__":
    sys.exit(main())
