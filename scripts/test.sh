#!/usr/bin/env bash
# Set up everything that is missing, then run the whole test suite (headless Qt).
# Extra arguments go to pytest (e.g. `bash scripts/test.sh -k scan`).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
cd "$TRAPGUI_ROOT"
export QT_QPA_PLATFORM="${QT_QPA_PLATFORM:-offscreen}"
set +e
"$VENV/bin/python" -m pytest "$@"
rc=$?
set -e
if [ $rc -eq 5 ]; then
  log "pytest collected no tests: that is a failure"
  exit 1
fi
exit $rc
