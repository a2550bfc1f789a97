#!/usr/bin/env bash
# ruff lint and format check over the pack (settings in pyproject's [tool.ruff]); exit status 1 on any finding.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# the checkout's venv, else the interpreter scripts/test.sh runs (COMFYUI_PYTHON: another ComfyUI's venv)
PY="${COMFYUI_PYTHON:-$ROOT/.venv/bin/python}"
RUFF="$ROOT/.venv/bin/ruff"
[ -x "$RUFF" ] || RUFF="$PY -m ruff"
status=0
$RUFF check . || status=1
$RUFF format --check . || status=1
exit "$status"
