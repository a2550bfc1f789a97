#!/usr/bin/env bash
# The device benchmark of all three papers (scripts/bench_device.py): one table of per-stage seconds, rates,
# peak memory and the ratio against the authors' settings. CUDA at real sizes when there is a GPU, else (or
# with --cpu) the CPU at reduced size, as CI runs it.
#
#   scripts/bench_device.sh [--quick] [--cpu] [--only face_adapter dva pie] [--json rows.json]
#
# Environment: PYTHON (default: COMFYUI_PYTHON, the environment of another ComfyUI as scripts/test.sh takes it,
# else the checkout's .venv), COMFYUI_DIR (the ComfyUI whose nodes Face-Adapter's
# graph runs), FACE_ICT_DIR (the ICT-FaceKit files PIE's test weights read).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-${COMFYUI_PYTHON:-$ROOT/.venv/bin/python}}"
[ -x "$PY" ] || PY="$(command -v python3)"
exec "$PY" "$ROOT/scripts/bench_device.py" "$@"
