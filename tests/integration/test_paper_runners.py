"""The dataset runners end to end: tiny datasets cut from the real media, two real ComfyUI servers with the
filled test weights, a runner killed mid-run and restarted, and one server stopped while it holds a sample.

What each test shows, from the servers' own records (their /history, where every prompt carries its sample id):
- the samples are spread over both servers at once;
- the restarted runner queues no finished sample again;
- every sample ends in results.jsonl once, and the table is written, labelled as filled-weight numbers;
- in the last test (PIE), the sample in flight on a stopped server is finished on the other one. The stop is the
  shared runner machinery's (scripts/run_dataset.py), the same for the three runners; the servers are the cost.

Both servers are shared: the session's `comfy` and one second server for this module, so each server process pays
its one-off warm-up (imports, first model loads) once rather than once per runner. Nearly all of a test's time is
the first prompt of a paper on each server (10 min each under a load average of 20, 12 s for the next prompt).
The samples are few and the sampler steps minimal, to keep CI time.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from comfy_client import ComfyServer
from media import load_rgb, load_video_rgb, media_path

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
LABEL = "filled test weights (deterministic, not the released files): the numbers test the plumbing only"


@pytest.fixture(scope="module")
def _module_second_comfy(comfy, tmp_path_factory):
    """Another server, started as the `comfy` fixture starts its own, on the same model folders."""
    yaml_path = Path(comfy.extra_model_paths)
    server = ComfyServer(tmp_path_factory.mktemp("comfy2"), extra_model_paths=yaml_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def second_comfy(_module_second_comfy):
    """The module's second server, started again if an earlier test stopped it (any test order works)."""
    server = _module_second_comfy
    if server.proc is None or server.proc.poll() is not None:
        server.start()
    return server


def history_counts(server) -> dict[str, int]:
    """sample id -> prompts the server has run for it (from the prompt's extra_data)."""
    counts: dict[str, int] = {}
    for entry in server.get_json("/history?max_items=10000").values():
        extra = entry.get("prompt", [None, None, None, {}])[3] or {}
        sample = extra.get("facecontrol_sample")
        if sample:
            counts[sample] = counts.get(sample, 0) + 1
    return counts


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.is_file() else []


def wait_for(condition, timeout: float, what: str, proc=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the runner exited ({proc.returncode}) before {what}")
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def run_with_interruptions(
    script: str, args: list[str], out: Path, a, b, total: int, model_root: Path, stop_b: bool = False
) -> list[dict]:
    """Run on a and b, SIGKILL the runner after its first result, restart it; with stop_b, stop server b as soon as
    the restarted runner has queued a sample on it, else let both servers finish the run."""
    cmd = [
        sys.executable,
        str(REPO / "scripts" / script),
        "--out",
        str(out),
        "--server",
        a.url,
        "--server",
        b.url,
        "--models-dir",
        str(model_root),
        "--weights-label",
        LABEL,
        *args,
    ]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    log = open(out.parent / f"{script}.log", "a")
    first = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    wait_for(lambda: lines(out / "results.jsonl"), 900, "the first result", first)
    first.send_signal(signal.SIGKILL)
    first.wait()
    before = {r["sample"] for r in lines(out / "results.jsonl")}
    assert 0 < len(before) < total, f"kill came too late to test a resume: {before}"
    counts_before = {k: history_counts(a).get(k, 0) + history_counts(b).get(k, 0) for k in before}

    second = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    if not stop_b:
        assert second.wait(900) == 0, (out.parent / f"{script}.log").read_text()[-4000:]
        return check_results(out, a, b, total, before, counts_before, {})

    def on_b_in_flight():
        # The whole queue log, not only what the restarted runner wrote: it may have queued on b before this test
        # looked, or reattached a sample the killed runner had left on b; either is a sample b holds.
        done = {r["sample"] for r in lines(out / "results.jsonl")}
        held = [q for q in lines(out / "queued.jsonl") if q["server"] == b.url and q["sample"] not in done]
        return held[-1] if held else None

    held = wait_for(on_b_in_flight, 900, "a sample queued on the second server", second)
    counts_b = history_counts(b)
    b.stop()
    assert second.wait(900) == 0, (out.parent / f"{script}.log").read_text()[-4000:]
    results = check_results(out, a, None, total, before, counts_before, counts_b)
    rescued = next(r for r in results if r["sample"] == held["sample"])
    assert rescued["status"] == "ok" and rescued["server"] == a.url, rescued
    return results


def check_results(out: Path, a, b, total: int, before: set, counts_before: dict, counts_b: dict) -> list[dict]:
    """Every sample once; nothing finished before the kill queued again (b: live server, or None with its history
    taken before it was stopped in counts_b); with b live, samples were queued on both servers."""
    results = lines(out / "results.jsonl")
    ids = [r["sample"] for r in results]
    assert len(ids) == len(set(ids)) == total, ids
    counts_a = history_counts(a)
    counts_b = history_counts(b) if b is not None else counts_b
    for sample in before:  # nothing finished before the kill was queued again
        assert counts_a.get(sample, 0) + counts_b.get(sample, 0) == counts_before[sample], sample
    if b is not None:  # two servers at once: the runner spread the samples over both (its queue log, kept as it goes)
        queued = {q["server"] for q in lines(out / "queued.jsonl")}
        assert queued == {a.url, b.url}, queued
    table = (out / "table.md").read_text()
    assert LABEL in table and (out / "table.csv").is_file() and (out / "samples.csv").is_file()
    return results


def write_frames(folder: Path, frames) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:04d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))


def test_face_adapter_runner(comfy, second_comfy, model_root, tmp_path):
    data = tmp_path / "fa_data"
    carphone = load_video_rgb(max_frames=81)
    write_frames(data / "voxceleb1" / "carphone" / "clip0", carphone[[0, 40, 80]])
    write_frames(data / "voxceleb1" / "astronaut" / "photo0", [cv2.resize(load_rgb("astronaut.png"), (256, 256))])
    write_frames(data / "ffpp" / "000", carphone[[20]])
    write_frames(data / "ffpp" / "001", [cv2.resize(load_rgb("astronaut.png"), (256, 256))])
    out = tmp_path / "fa_out"
    results = run_with_interruptions(
        "run_face_adapter.py",
        [
            "--dataset",
            str(data),
            "--same",
            "2",
            "--cross",
            "1",
            "--swap-frames",
            "1",
            "--swap-pairs",
            "1",
            "--steps",
            "1",
            "--gallery-frames",
            "1",
        ],
        out,
        comfy,
        second_comfy,
        4,
        model_root,
    )
    assert all(r["status"] == "ok" for r in results), results
    same = [r for r in results if r["kind"] == "same"]
    assert all(np.isfinite(r["PSNR"]) and r["LPIPS"] > 0 and "Pose" in r and -1 <= r["CSIM"] <= 1 for r in same)
    table = (out / "table.md").read_text()
    for title in ("same-identity", "cross-identity", "FaceForensics++"):
        assert title in table
    assert "Face-Adapter (paper) | 22.36 | 0.1281 | 29.27" in table
    assert "dlib ResNet v1" in table


def write_video(path: Path, frames, fps: int = 15) -> None:
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"crf": "0"})
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_dva_runner(comfy, second_comfy, model_root, tmp_path):
    data = tmp_path / "dva_data"
    frames = load_video_rgb(max_frames=64)
    write_video(data / "reconstruction" / "clip_a.mp4", frames[0:4])
    write_video(data / "reconstruction" / "clip_b.mp4", frames[30:34])
    shutil.copyfile(media_path("carphone_pristine.mp4"), data / "reconstruction" / "clip_c.mp4")
    write_video(data / "edit" / "clip_d.mp4", frames[60:64])
    out = tmp_path / "dva_out"
    results = run_with_interruptions(
        "run_dva.py", ["--dataset", str(data), "--steps", "2", "--frames", "2"], out, comfy, second_comfy, 4, model_root
    )
    assert all(r["status"] == "ok" for r in results), results
    recon = [r for r in results if r["kind"] == "reconstruction"]
    assert all(len(r["SSIM"]) == 2 and len(r["LPIPS"]) == 2 for r in recon)
    assert all(np.isfinite(r["TL-ID"]) for r in results if r["kind"] == "edit")
    table = (out / "table.md").read_text()
    assert "DVA T=100 (paper) | 0.922 | n/a | 0.989 | 0.045 | 0.002" in table and "TL-ID" in table


def test_pie_runner(comfy, second_comfy, model_root, tmp_path):
    data = tmp_path / "pie_data"
    write_frames(data / "portraits", [load_rgb("astronaut.png")])
    (data / "edits.csv").write_text("portrait,yaw,smile,light_from_right\n*,15,,\n*,,0.5,\n*,,,0.3\n*,-10,,\n")
    out = tmp_path / "pie_out"
    results = run_with_interruptions(
        "run_pie.py",
        ["--dataset", str(data), "--embed-steps", "1", "--edit-steps", "1"],
        out,
        comfy,
        second_comfy,
        4,
        model_root,
        stop_b=True,
    )
    assert all(r["status"] == "ok" for r in results), results
    assert all(-1 <= r["identity"] <= 1 for r in results)
    table = (out / "table.md").read_text()
    assert "Edit accuracy" in table and "Identity preservation" in table
