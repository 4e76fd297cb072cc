#!/usr/bin/env bash
# Packs a PyInstaller onedir bundle into the self-extracting per-user installer:
#   bash packaging/selfextract/make_run.sh BUNDLE_DIR OUT.run VERSION
# OUT.run = header.sh (version, unpacked size, payload SHA-256 filled in) + tar.gz payload
# holding trapgui/ (the bundle) and share/ (icon, menu entry template).
set -euo pipefail
PKG="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROOT="$(dirname "$PKG")"
BUNDLE="$(cd "$1" && pwd)"; RUN="$2"; VERSION="$3"
[ -x "$BUNDLE/trapgui" ] || { echo "make_run: $BUNDLE/trapgui is not an executable" >&2; exit 1; }

TMP="$(mktemp -d "$(dirname "$RUN")/run.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$TMP/share"
cp "$ROOT/resources/trapgui.png" "$ROOT/resources/trapgui.svg" "$PKG/trapgui.desktop.in" "$TMP/share/"
tar -cf - --owner=0 --group=0 -C "$(dirname "$BUNDLE")" "$(basename "$BUNDLE")" \
        --transform "s|^$(basename "$BUNDLE")|trapgui|" -C "$TMP" share \
    | gzip -1 > "$TMP/payload.tar.gz"
sha="$(sha256sum "$TMP/payload.tar.gz" | cut -d' ' -f1)"
unpacked_kb=$(( $(du -sk "$BUNDLE" | cut -f1) + 1024 ))
sed -e "s/@VERSION@/$VERSION/g" -e "s/@UNPACKED_KB@/$unpacked_kb/" -e "s/@PAYLOAD_SHA256@/$sha/" \
    "$PKG/selfextract/header.sh" > "$TMP/out.run"
cat "$TMP/payload.tar.gz" >> "$TMP/out.run"
chmod 755 "$TMP/out.run"
mv "$TMP/out.run" "$RUN"
