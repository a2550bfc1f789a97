"""One benchmark of all three papers on a device: Face-Adapter, DVA and PIE, one table.

Runs the papers' own benchmark scripts (bench_face_adapter.py, bench_dva.py, bench_pie.py), each in its own
process so its peak GPU memory (torch.cuda.max_memory_allocated) and peak RSS are its own, and prints one
table: per-stage seconds, frames or iterations per second, peak memory, and the ratio against the authors'
settings measured in the same run.

On CUDA the weights are filled at the real sizes (SD1.5 + ViT-H/14 for Face-Adapter, the released 128-channel
DVA UNet, a 1024 px StyleGAN2 FFHQ generator for PIE); on the CPU (or --reduced) the CI test sizes. `--quick`
runs fewer steps (about 2 minutes on one large GPU instead of 8).

    scripts/bench_device.sh                 # CUDA when there is one, real sizes
    scripts/bench_device.sh --quick
    scripts/bench_device.sh --cpu --quick   # what CI runs (reduced size)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import re
import resource
import runpy
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"
log = logging.getLogger("facecontrol.bench_device")

# The released StyleGAN2 FFHQ 1024 generator's constructor arguments (NVlabs' stylegan2-ada-pytorch config).
FFHQ_1024 = {
    "z_dim": 512,
    "c_dim": 0,
    "w_dim": 512,
    "img_resolution": 1024,
    "img_channels": 3,
    "mapping_kwargs": {"num_layers": 8},
    "synthesis_kwargs": {"channel_base": 32768, "channel_max": 512, "num_fp16_res": 4, "conv_clamp": 256},
}
DVA_RELEASED_CHANNELS = 128
AUTHORS_DVA_CHUNK = 4  # the authors' scripts push 4 frames through the UNet per call
PIE_AUTHORS_STEPS = 3000  # the paper's embedding schedule


@dataclass
class Row:
    bench: str
    stage: str
    seconds: float | None = None
    rate: str = ""
    peak_gpu_mib: float | None = None
    peak_rss_mib: float | None = None
    vs_authors: str = ""


@dataclass
class Plan:
    cuda: bool
    quick: bool
    workdir: Path

    @property
    def device(self) -> str:
        return "cuda" if self.cuda else "cpu"


# ---------------------------------------------------------------- one benchmark in its own process


def child_main(record_path: str, script: str, args: list[str]) -> None:
    """Run one bench script as __main__ and record its wall time and peak memory."""
    sys.argv = [script, *args]
    start = time.perf_counter()
    runpy.run_path(script, run_name="__main__")
    record = {
        "wall_s": time.perf_counter() - start,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        record["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20
    Path(record_path).write_text(json.dumps(record))


def run_bench(script: str, args: list[str], plan: Plan, timeout: float) -> tuple[str, dict]:
    record_path = Path(tempfile.mkstemp(suffix=".json", dir=plan.workdir)[1])
    cmd = [sys.executable, __file__, "_child", str(record_path), str(SCRIPTS / script), *args]
    log.info("running %s", " ".join(cmd[3:]))
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    if done.returncode != 0:
        raise RuntimeError(f"{script} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout, json.loads(record_path.read_text())


def _memory(record: dict) -> dict:
    return {"peak_gpu_mib": record.get("peak_gpu_mib"), "peak_rss_mib": record.get("peak_rss_mib")}


# ---------------------------------------------------------------- weights at the real sizes


def _filled_weights(name: str):
    spec = importlib.util.spec_from_file_location(
        f"bench_weights_{name}", REPO / "tests" / "filled_weights" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_full_dva_checkpoint(path: Path) -> Path:
    """The test checkpoint's layout with the released 128 base channels (filled by the golden fill rule)."""
    import torch

    if path.is_file():
        return path
    weights = _filled_weights("dva")
    weights.TEST_UNET = dict(weights.TEST_UNET, model_channels=DVA_RELEASED_CHANNELS)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(weights._lightning(weights.dva_state()), path)
    return path


def write_full_generator(path: Path) -> Path:
    """A 1024 px StyleGAN2 FFHQ generator pickle in NVlabs' layout, default-initialised, w_avg from 512 z."""
    import torch

    if path.is_file():
        return path
    from facecontrol.models.stylegan2_nvlabs import Generator

    weights = _filled_weights("pie")
    weights.GENERATOR_KWARGS = FFHQ_1024
    torch.manual_seed(0)
    with torch.no_grad():
        generator = Generator(**FFHQ_1024).eval().requires_grad_(False)
        z = torch.randn(512, generator.z_dim, generator=torch.Generator().manual_seed(1))
        generator.mapping.w_avg.copy_(generator.mapping(z, None)[:, 0].mean(0))
    weights.write_generator_pickle(path, generator)
    return path


# ---------------------------------------------------------------- the three papers


FA_LINE = re.compile(r"^\s{2}(\S+(?: decode)?)\s+([\d.]+) ms")


def face_adapter(plan: Plan) -> list[Row]:
    steps = (10 if plan.quick else 25) if plan.cuda else 2
    args = [
        "--size",
        "full" if plan.cuda else "test",
        "--steps",
        str(steps),
        "--repeats",
        "1" if plan.quick or not plan.cuda else "2",
        "--models-dir",
        str(plan.workdir / "no_models"),
    ]
    if not plan.cuda:
        args.append("--cpu")
    out, record = run_bench("bench_face_adapter.py", args, plan, timeout=1800)
    stages = {m.group(1): float(m.group(2)) / 1000 for line in out.splitlines() if (m := FA_LINE.match(line))}
    rows = [
        Row("Face-Adapter", stage, seconds) for stage, seconds in stages.items() if stage not in ("outside", "sampler")
    ]
    sampler, outside = stages["sampler"], stages["outside"]
    rows.append(Row("Face-Adapter", f"sampler ({steps} steps)", sampler, f"{steps / sampler:.2f} it/s"))
    rows.append(
        Row(
            "Face-Adapter",
            "outside the sampler",
            outside,
            **_memory(record),
            vs_authors=f"{100 * outside / sampler:.1f}% of the sampler (target < 5%)",
        )
    )
    return rows


def dva(plan: Plan) -> list[Row]:
    if plan.cuda:
        frames, steps, ours = (8, 20, 16) if plan.quick else (16, 100, 16)
        checkpoint = ["--checkpoint", str(write_full_dva_checkpoint(plan.workdir / "dva_full.ckpt"))]
    else:
        frames, steps, ours = 2, 2, 2
        checkpoint = []
    authors = min(AUTHORS_DVA_CHUNK, frames) if plan.cuda else 1
    results = {}
    for label, chunk in (("ours", ours), ("authors", authors)):
        args = [
            "speed",
            "--device",
            plan.device,
            "--frames",
            str(frames),
            "--steps",
            str(steps),
            "--chunk",
            str(chunk),
            "--batch-frames",
            str(frames),
            "--threads",
            str(os.cpu_count() if plan.cuda else 2),
            *checkpoint,
        ]
        out, record = run_bench("bench_dva.py", args, plan, timeout=1800)
        lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        results[label] = (next(r for r in lines if r["bench"] == "encode_decode"), record, lines)
    ours_rec, record, lines = results["ours"]
    authors_rec = results["authors"][0]
    calls = {r["chunk"]: r["frames_per_second_per_call"] for r in lines if r["bench"] == "unet_call"}
    rows = [
        Row("DVA", f"UNet call, {chunk} frame(s) a call", None, f"{fps:.2f} frames/s")
        for chunk, fps in sorted(calls.items())
    ]
    rows.append(
        Row(
            "DVA",
            f"encode+decode, T={steps}, chunk {authors} (authors)",
            authors_rec["seconds"],
            f"{authors_rec['frames_per_second']:.3f} frames/s",
            **_memory(results["authors"][1]),
        )
    )
    rows.append(
        Row(
            "DVA",
            f"encode+decode, T={steps}, chunk {ours} (ours)",
            ours_rec["seconds"],
            f"{ours_rec['frames_per_second']:.3f} frames/s",
            **_memory(record),
            vs_authors=f"{authors_rec['seconds'] / max(ours_rec['seconds'], 1e-9):.2f}x the authors' chunking",
        )
    )
    return rows


PIE_SYNTH = re.compile(
    r"E_synth only \(W then W\+, (\d+) steps\): ([\d.]+) it/s.*time to E_synth <= ([\d.eE+-]+): ([\d.]+ s|not reached)"
)
PIE_FULL = re.compile(r"all five energies with a RigNet \((\d+) steps\): ([\d.]+) it/s")


def pie(plan: Plan) -> list[Row]:
    steps = (10 if plan.quick else 40) if plan.cuda else 3
    args = ["--device", plan.device, "--steps", str(steps)]
    if plan.cuda:
        args += ["--generator", str(write_full_generator(plan.workdir / "ffhq_1024_filled.pkl"))]
    out, record = run_bench("bench_pie.py", args, plan, timeout=1800)
    synth, full = PIE_SYNTH.search(out), PIE_FULL.search(out)
    if synth is None or full is None:
        raise RuntimeError(f"bench_pie.py printed no rates:\n{out}")
    resolution = re.search(r"generator (\d+) px", out).group(1)
    synth_rate, full_rate = float(synth.group(2)), float(full.group(2))
    reached = synth.group(4)
    rows = [
        Row(
            "PIE",
            f"E_synth only, {resolution} px, {synth.group(1)} steps",
            int(synth.group(1)) / synth_rate,
            f"{synth_rate:.2f} it/s",
            vs_authors=f"to E_synth <= {synth.group(3)}: {reached}",
        ),
        Row(
            "PIE",
            f"all five energies, {resolution} px, {full.group(1)} steps",
            int(full.group(1)) / full_rate,
            f"{full_rate:.2f} it/s",
            **_memory(record),
            vs_authors=f"paper's {PIE_AUTHORS_STEPS} steps: {PIE_AUTHORS_STEPS / full_rate / 60:.1f} min",
        ),
    ]
    return rows


# ---------------------------------------------------------------- table


def _fmt(value, spec: str) -> str:
    return "" if value is None else format(value, spec)


def render(rows: list[Row], header: str) -> str:
    cols = ("paper", "stage", "seconds", "rate", "peak GPU MiB", "peak RSS MiB", "vs the authors' settings")
    cells = [
        (
            r.bench,
            r.stage,
            _fmt(r.seconds, ".3f"),
            r.rate,
            _fmt(r.peak_gpu_mib, ".0f"),
            _fmt(r.peak_rss_mib, ".0f"),
            r.vs_authors,
        )
        for r in rows
    ]
    lines = [header, "| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def device_name(cuda: bool) -> str:
    import torch

    return torch.cuda.get_device_name(0) if cuda else f"CPU ({os.cpu_count()} cores)"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_child":
        child_main(argv[1], argv[2], argv[3:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer steps: about 2 minutes on one large GPU")
    parser.add_argument("--cpu", action="store_true", help="run on the CPU at reduced size even with a GPU")
    parser.add_argument(
        "--only", nargs="+", choices=["face_adapter", "dva", "pie"], default=["face_adapter", "dva", "pie"]
    )
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--workdir", type=Path, help="where the filled weights go (default: a temporary folder)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[bench] %(message)s")
    import torch

    cuda = torch.cuda.is_available() and not args.cpu
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="facecontrol_bench_"))
    workdir.mkdir(parents=True, exist_ok=True)
    plan = Plan(cuda=cuda, quick=args.quick, workdir=workdir)
    start = time.perf_counter()
    rows: list[Row] = []
    for name in args.only:
        rows += {"face_adapter": face_adapter, "dva": dva, "pie": pie}[name](plan)
    size = "real sizes (filled weights)" if cuda else "reduced size (CI test weights)"
    header = (
        f"FaceControl device benchmark on {device_name(cuda)}, torch {torch.__version__}, {size}"
        f"{', quick' if args.quick else ''}; {time.perf_counter() - start:.0f} s in all"
    )
    print(render(rows, header))
    if args.json:
        args.json.write_text(json.dumps({"header": header, "rows": [asdict(r) for r in rows]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
