#!/usr/bin/env bash
# Installs what trapgui needs on a Debian/Ubuntu machine, only what is missing:
#   - the Debian libraries Qt needs (offscreen and real windows) and Xvfb,
#   - a virtual environment (.venv, or $TRAPGUI_VENV) with the Python packages.
# Idempotent: a second run with nothing changed takes about a second (a stamp file records the
# hash of pyproject.toml + scripts/constraints.txt). Sourced by run.sh and test.sh.
set -euo pipefail

TRAPGUI_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${TRAPGUI_VENV:-$TRAPGUI_ROOT/.venv}"
PYTHON_BIN="${TRAPGUI_PYTHON:-python3}"

APT_PACKAGES=(
  libgl1 libegl1 libxkbcommon0 libfontconfig1 libdbus-1-3 libglib2.0-0
  xvfb xauth libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-render-util0
  libxcb-render0 libxcb-shape0 libxcb-xkb1 libxkbcommon-x11-0 libxcb-randr0 libxcb-xfixes0
  libxcb-shm0 libxcb-sync1 libxcb-xinerama0 fonts-dejavu-core
)

log() { printf '\033[1m[trapgui setup]\033[0m %s\n' "$*" >&2; }

install_debian_packages() {
  command -v dpkg-query >/dev/null 2>&1 || { log "not a Debian system: skipping system libraries"; return 0; }
  local missing=()
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing system libraries: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ensure_venv() {
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating virtual environment in $VENV"
    if ! "$PYTHON_BIN" -m venv "$VENV" 2>/dev/null; then
      install_python_venv_package
      "$PYTHON_BIN" -m venv "$VENV"
    fi
  fi
  local stamp="$VENV/.trapgui-stamp"
  local want
  want="$(cat "$TRAPGUI_ROOT/pyproject.toml" "$TRAPGUI_ROOT/scripts/constraints.txt" | sha256sum | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  log "installing Python packages (first time: several minutes, torch is large)"
  local pip_log="$VENV/pip-install.log"
  if ! { "$VENV/bin/python" -m pip install --upgrade pip \
         && "$VENV/bin/python" -m pip install -c "$TRAPGUI_ROOT/scripts/constraints.txt" \
              -e "$TRAPGUI_ROOT[test,timm,cluster]"; } >"$pip_log" 2>&1; then
    tail -n 40 "$pip_log" >&2
    log "installing Python packages failed (full log: $pip_log)"
    return 1
  fi
  echo "$want" > "$stamp"
}

install_python_venv_package() {
  local ver
  ver="$("$PYTHON_BIN" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
  log "installing python$ver-venv"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "python$ver-venv" python3-venv >/dev/null
}

install_debian_packages
ensure_venv
export PATH="$VENV/bin:$PATH"
