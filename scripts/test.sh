#!/usr/bin/env bash
# Every test: set up with the test extras (idempotent), then unit, golden, integration and browser tests.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh" --test || exit $?
cd "$ROOT"
"$ROOT/.venv/bin/python" -m pytest -ra "$@"
status=$?
# pytest exits 5 when it collected no test: that is a failure here, never a pass
[ "$status" = 5 ] && echo "no tests were collected" >&2
exit "$status"
