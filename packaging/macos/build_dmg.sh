#!/usr/bin/env bash
# macOS: builds trapgui.app (PyInstaller BUNDLE from packaging/trapgui.spec), signs it ad hoc,
# checks it with --smoke and packs it into a drag-to-Applications .dmg:
#
#   bash packaging/macos/build_dmg.sh          (python3 with the project + pyinstaller installed,
#                                               or PYTHON=/path/to/venv/bin/python)
# Output: packaging/out/trapgui-<version>-macos-<arch>.dmg
#
# Ad-hoc signing (identity "-") lets Apple silicon run the binaries; it is not notarised, so
# on first start Gatekeeper asks the user to confirm (right-click > Open, or System Settings >
# Privacy & Security > Open Anyway). Notarising needs a Developer ID certificate.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="$ROOT/packaging/out"
PYTHON="${PYTHON:-python3}"
VERSION="$(awk -F'"' '/^version *=/ { print $2; exit }' "$ROOT/pyproject.toml")"
ARCH="$(uname -m)"
DMG="$OUT/trapgui-${VERSION}-macos-${ARCH}.dmg"
START=$(date +%s)

[ "$(uname -s)" = Darwin ] || { echo "build_dmg.sh runs on macOS" >&2; exit 1; }
mkdir -p "$OUT"
rm -rf "$OUT/dist/trapgui" "$OUT/dist/trapgui.app"
"$PYTHON" -m PyInstaller --noconfirm --log-level WARN \
    --distpath "$OUT/dist" --workpath "$OUT/build" "$ROOT/packaging/trapgui.spec"
APP="$OUT/dist/trapgui.app"
[ -x "$APP/Contents/MacOS/trapgui" ] || { echo "PyInstaller made no $APP" >&2; exit 1; }
T_FREEZE=$(( $(date +%s) - START ))

# Ad-hoc signature over the whole bundle (PyInstaller signs each binary; this seals the .app)
codesign --force --deep --sign - "$APP"
codesign --verify --deep --strict --verbose=2 "$APP"

smoke_home="$(mktemp -d)"
HOME="$smoke_home" QT_QPA_PLATFORM=offscreen "$APP/Contents/MacOS/trapgui" --smoke
rm -rf "$smoke_home"

STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT
cp -R "$APP" "$STAGE/"
ln -s /Applications "$STAGE/Applications"
rm -f "$DMG"
hdiutil create -volname "trapgui $VERSION" -srcfolder "$STAGE" -fs HFS+ -format UDZO -ov "$DMG"
hdiutil verify "$DMG"
echo "$(basename "$DMG"): $(du -h "$DMG" | cut -f1), .app $(du -sh "$APP" | cut -f1);" \
     "PyInstaller ${T_FREEZE}s, total $(( $(date +%s) - START ))s"
