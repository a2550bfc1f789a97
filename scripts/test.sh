#!/usr/bin/env bash
# Every test: set up with the test extras (idempotent), the lint gate, then unit, golden, comfy, integration and
# browser tests (the order of pyproject's testpaths).
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
# Lint gate (scripts/lint.sh: ruff check + ruff format --check); FACECONTROL_LINT_GATE=0 turns it off.
LINT_GATE="${FACECONTROL_LINT_GATE:-1}"
lint_status=0
if [ "$LINT_GATE" = 1 ]; then
    "$ROOT/scripts/lint.sh" || lint_status=1
fi
"$PY" -m pytest -ra "$@"
status=$?
[ "$status" = 0 ] && [ "$lint_status" != 0 ] && { echo "ruff found lint or format problems (scripts/lint.sh)" >&2; status=1; }
# pytest exits 5 when it collected no test: that is a failure here, never a pass
[ "$status" = 5 ] && echo "no tests were collected" >&2
exit "$status"
