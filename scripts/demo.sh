#!/usr/bin/env bash
# The main job: set up (idempotent), then run the shipped workflows in a headless ComfyUI.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
cd "$ROOT/scripts"
exec "$ROOT/.venv/bin/python" demo.py "$@"
