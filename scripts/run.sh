#!/usr/bin/env bash
# Set up everything that is missing, then start trapgui. Extra arguments go to trapgui
# (e.g. `bash scripts/run.sh scan /path/to/trap`).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
cd "$TRAPGUI_ROOT"
if [ $# -eq 0 ] && [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ] && [ "$(uname)" = Linux ] \
   && [ -z "${QT_QPA_PLATFORM:-}" ]; then
  log "no display found: starting trapgui on a virtual screen (Xvfb); close it with Ctrl+C"
  exec xvfb-run -a -s "-screen 0 1600x1000x24" "$VENV/bin/python" -m trapgui
fi
exec "$VENV/bin/python" -m trapgui "$@"
