#!/usr/bin/env bash
# Packs a PyInstaller onedir bundle into a .deb:
#   bash packaging/deb/make_deb.sh BUNDLE_DIR OUT.deb VERSION [PACKAGE_NAME]
# /opt/trapgui (the bundle), /usr/bin/trapgui (launcher), menu entry, hicolor icons, the
# maintainer scripts; Depends from control.in, libc6 >= this machine's glibc.
set -euo pipefail
PKG="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROOT="$(dirname "$PKG")"
BUNDLE="$1"; DEB="$2"; VERSION="$3"; NAME="${4:-trapgui}"
[ -x "$BUNDLE/trapgui" ] || { echo "make_deb: $BUNDLE/trapgui is not an executable" >&2; exit 1; }

DEBROOT="$(mktemp -d "$(dirname "$DEB")/debroot.XXXXXX")"
trap 'rm -rf "$DEBROOT"' EXIT
chmod 755 "$DEBROOT"
mkdir -p "$DEBROOT/DEBIAN" "$DEBROOT/opt" "$DEBROOT/usr/bin" "$DEBROOT/usr/share/applications" \
         "$DEBROOT/usr/share/icons/hicolor/256x256/apps" "$DEBROOT/usr/share/icons/hicolor/scalable/apps"
# hard links when on the same filesystem: no second copy of a multi-GB tree
cp -al "$BUNDLE" "$DEBROOT/opt/trapgui" 2>/dev/null || cp -a "$BUNDLE" "$DEBROOT/opt/trapgui"
install -m 755 "$PKG/deb/trapgui.sh" "$DEBROOT/usr/bin/trapgui"
sed 's|@EXEC@|/usr/bin/trapgui|g' "$PKG/trapgui.desktop.in" > "$DEBROOT/usr/share/applications/trapgui.desktop"
chmod 644 "$DEBROOT/usr/share/applications/trapgui.desktop"
install -m 644 "$ROOT/resources/trapgui.png" "$DEBROOT/usr/share/icons/hicolor/256x256/apps/trapgui.png"
install -m 644 "$ROOT/resources/trapgui.svg" "$DEBROOT/usr/share/icons/hicolor/scalable/apps/trapgui.svg"
install -m 755 "$PKG/deb/postinst" "$PKG/deb/postrm" "$DEBROOT/DEBIAN/"
glibc="$(ldd --version 2>/dev/null | awk 'NR == 1 { print $NF }')"
installed_kb=$(du -sk --exclude=DEBIAN "$DEBROOT" | cut -f1)
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/amd64/" -e "s/@INSTALLED_SIZE@/$installed_kb/" \
    -e "s/@GLIBC@/$glibc/" -e "s/^Package: trapgui$/Package: $NAME/" \
    "$PKG/deb/control.in" > "$DEBROOT/DEBIAN/control"
if [ "$NAME" != trapgui ]; then  # a variant (e.g. trapgui-cpu) replaces the other one
    printf 'Conflicts: trapgui\nReplaces: trapgui\nProvides: trapgui\n' >> "$DEBROOT/DEBIAN/control"
fi
# gzip -1: fast on a multi-GB tree and readable by every dpkg (zstd needs dpkg >= 1.21.18)
dpkg-deb --root-owner-group -Zgzip -z1 --build "$DEBROOT" "$DEB" >/dev/null
