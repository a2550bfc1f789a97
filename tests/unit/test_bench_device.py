"""scripts/bench_device.sh at reduced size on the CPU (what CI can run): every paper's benchmark runs in its
own process and lands in the one table, with the authors' comparison filled in."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_device_benchmark_runs_at_reduced_size(tmp_path):
    rows_path = tmp_path / "rows.json"
    done = subprocess.run(
        [
            "bash",
            str(REPO_ROOT / "scripts" / "bench_device.sh"),
            "--cpu",
            "--quick",
            "--json",
            str(rows_path),
            "--workdir",
            str(tmp_path / "work"),
        ],
        capture_output=True,
        text=True,
        timeout=3000,
        env=dict(os.environ, PYTHON=os.environ.get("PYTHON", sys.executable)),  # this test's environment
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = json.loads(rows_path.read_text())
    assert "reduced size" in table["header"] and "CPU" in table["header"]
    papers = {row["bench"] for row in table["rows"]}
    assert papers == {"Face-Adapter", "DVA", "PIE"}
    for paper in papers:
        rows = [row for row in table["rows"] if row["bench"] == paper]
        assert any(row["vs_authors"] for row in rows), paper
        assert all(row["seconds"] is None or row["seconds"] > 0 for row in rows), paper
        assert any(row["peak_rss_mib"] for row in rows), paper
    assert "| paper | stage | seconds |" in done.stdout
