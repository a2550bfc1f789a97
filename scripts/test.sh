#!/usr/bin/env bash
# Every test: set up with the test extras (idempotent), then unit, golden, integration and browser tests.
#
# Against another ComfyUI in its own environment (the set-up is then that environment's, see
# docs/COMPATIBILITY.md): COMFYUI_DIR=<ComfyUI tree> COMFYUI_PYTHON=<its venv>/bin/python scripts/test.sh
# (the pack must be importable there as `facecontrol`: pip install -e . or PYTHONPATH). With
# COMFYUI_FRONTEND_VERSION=<version|latest> the server serves that comfyui-frontend-package.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -n "${COMFYUI_PYTHON:-}" ]; then
  PY="$COMFYUI_PYTHON"
else
  "$ROOT/scripts/setup.sh" --test || exit $?
  PY="$ROOT/.venv/bin/python"
fi
cd "$ROOT"
"$PY" -m pytest -ra "$@"
status=$?
# pytest exits 5 when it collected no test: that is a failure here, never a pass
[ "$status" = 5 ] && echo "no tests were collected" >&2
exit "$status"
