#!/bin/sh
# trapgui @VERSION@ for Linux (x86_64): self-extracting installer, no root needed.
#
#   sh trapgui-@VERSION@-linux-x86_64.run            install for this user (or upgrade)
#   sh trapgui-@VERSION@-linux-x86_64.run --help     options
#
# Installs the program into ~/.local/share/trapgui-app, a `trapgui` command into ~/.local/bin,
# a menu entry into ~/.local/share/applications and an uninstaller (trapgui-uninstall).
# Your catalogue database and models live in ~/.local/share/trapgui: installing, upgrading
# and uninstalling never touch that folder.
set -eu

VERSION="@VERSION@"
UNPACKED_KB="@UNPACKED_KB@"
PAYLOAD_SHA256="@PAYLOAD_SHA256@"

DATA_HOME="${XDG_DATA_HOME:-$HOME/.local/share}"
PREFIX="$DATA_HOME/trapgui-app"
BINDIR="$HOME/.local/bin"
DESKTOP=1
CHECK_ONLY=0

usage() {
    cat <<USAGE
trapgui $VERSION installer (no root needed)

Usage: sh $(basename "$0") [options]
  --prefix DIR    install the program into DIR (default: $PREFIX)
  --bindir DIR    put the trapgui and trapgui-uninstall commands into DIR (default: $BINDIR)
  --no-desktop    do not add a menu entry and icon
  --check         only verify the installer file (SHA-256) and exit
  -h, --help      this help

Uninstall with: trapgui-uninstall   (keeps your data in $DATA_HOME/trapgui)
USAGE
}

die() { printf 'trapgui installer: %s\n' "$*" >&2; exit 1; }

while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) [ $# -ge 2 ] || die "--prefix needs a folder"; PREFIX="$2"; shift 2 ;;
        --prefix=*) PREFIX="${1#*=}"; shift ;;
        --bindir) [ $# -ge 2 ] || die "--bindir needs a folder"; BINDIR="$2"; shift 2 ;;
        --bindir=*) BINDIR="${1#*=}"; shift ;;
        --no-desktop) DESKTOP=0; shift ;;
        --check) CHECK_ONLY=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $1" ;;
    esac
done

case "$PREFIX" in /*) ;; *) PREFIX="$(pwd)/$PREFIX" ;; esac
case "$BINDIR" in /*) ;; *) BINDIR="$(pwd)/$BINDIR" ;; esac
PREFIX="${PREFIX%/}"
# The uninstaller deletes PREFIX: refuse folders whose removal would lose anything else.
case "$PREFIX" in
    ""|/|"$HOME"|"$DATA_HOME"|"$DATA_HOME/trapgui"|/usr|/usr/*|/opt|/bin|/etc|/var|/tmp)
        die "refusing to install into $PREFIX (choose a folder of its own, e.g. $DATA_HOME/trapgui-app)" ;;
esac
if [ -e "$PREFIX" ] && [ ! -e "$PREFIX/.trapgui-app" ] && [ -n "$(ls -A "$PREFIX" 2>/dev/null)" ]; then
    die "$PREFIX exists and is not a trapgui installation: choose another --prefix"
fi

SELF="$0"
[ -r "$SELF" ] || die "cannot read the installer file $SELF"
PAYLOAD_LINE=$(awk '/^__TRAPGUI_PAYLOAD_BELOW__$/ { print NR + 1; exit }' "$SELF")
[ -n "$PAYLOAD_LINE" ] || die "the installer file is damaged (no payload marker)"

payload() { tail -n +"$PAYLOAD_LINE" "$SELF"; }

if [ "$CHECK_ONLY" = 1 ]; then
    command -v sha256sum >/dev/null 2>&1 || die "sha256sum is not available"
    got=$(payload | sha256sum | cut -d' ' -f1)
    [ "$got" = "$PAYLOAD_SHA256" ] || die "checksum mismatch: the file is damaged or incomplete; download it again"
    echo "trapgui installer $VERSION: checksum OK"
    exit 0
fi

[ "$(uname -s)" = Linux ] || die "this installer is for Linux"
[ "$(uname -m)" = x86_64 ] || die "this installer is for x86_64 computers (this one is $(uname -m))"
command -v tar >/dev/null 2>&1 || die "tar is needed"
command -v gzip >/dev/null 2>&1 || die "gzip is needed"

PARENT=$(dirname "$PREFIX")
mkdir -p "$PARENT" "$BINDIR" || die "cannot create $PARENT or $BINDIR"
avail_kb=$(df -Pk "$PARENT" | awk 'NR == 2 { print $4 }')
if [ -n "$avail_kb" ] && [ "$avail_kb" -lt $((UNPACKED_KB + 102400)) ]; then
    die "not enough disk space in $PARENT: need $((UNPACKED_KB / 1024)) MB, have $((avail_kb / 1024)) MB"
fi

# Unpack next to the target and swap folders at the end: an interrupted install or upgrade
# leaves the previous version working.
STAGE="$PREFIX.installing.$$"
cleanup() { rm -rf "$STAGE" "$PREFIX.previous.$$"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$STAGE"
echo "Unpacking trapgui $VERSION ($((UNPACKED_KB / 1024)) MB) ..."
payload | tar -xzf - -C "$STAGE" || die "unpacking failed: the installer file is damaged or incomplete (check it with --check)"
[ -x "$STAGE/trapgui/trapgui" ] || die "the installer payload has no trapgui program"

LAUNCHER="$BINDIR/trapgui"
UNINSTALLER="$BINDIR/trapgui-uninstall"
APPS_DIR="$DATA_HOME/applications"
ICONS_DIR="$DATA_HOME/icons/hicolor"
DESKTOP_FILE="$APPS_DIR/trapgui.desktop"

# The uninstaller is written with the exact paths of this installation.
cat > "$STAGE/uninstall.sh" <<UNINSTALL
#!/bin/sh
# Removes trapgui $VERSION installed for $(id -un). Keeps your data in $DATA_HOME/trapgui.
set -eu
[ -e "$PREFIX/.trapgui-app" ] || { echo "trapgui is not installed in $PREFIX" >&2; exit 1; }
rm -f "$LAUNCHER" "$UNINSTALLER" "$DESKTOP_FILE" \\
      "$ICONS_DIR/256x256/apps/trapgui.png" "$ICONS_DIR/scalable/apps/trapgui.svg"
command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q "$APPS_DIR" 2>/dev/null || true
rm -rf "$PREFIX"
echo "trapgui was removed. Your catalogue and models are still in $DATA_HOME/trapgui"
UNINSTALL
chmod 755 "$STAGE/uninstall.sh"
echo "$VERSION" > "$STAGE/.trapgui-app"

if [ -e "$PREFIX" ]; then
    mv "$PREFIX" "$PREFIX.previous.$$"
fi
mv "$STAGE" "$PREFIX"

tmp="$LAUNCHER.tmp.$$"
printf '#!/bin/sh\n# trapgui launcher (installed by the trapgui %s installer)\nexec "%s/trapgui/trapgui" "$@"\n' \
    "$VERSION" "$PREFIX" > "$tmp"
chmod 755 "$tmp"
mv -f "$tmp" "$LAUNCHER"
ln -sf "$PREFIX/uninstall.sh" "$UNINSTALLER"

if [ "$DESKTOP" = 1 ]; then
    mkdir -p "$APPS_DIR" "$ICONS_DIR/256x256/apps" "$ICONS_DIR/scalable/apps"
    cp "$PREFIX/share/trapgui.png" "$ICONS_DIR/256x256/apps/trapgui.png"
    [ -f "$PREFIX/share/trapgui.svg" ] && cp "$PREFIX/share/trapgui.svg" "$ICONS_DIR/scalable/apps/trapgui.svg"
    # Exec uses the absolute launcher path: desktop sessions often lack ~/.local/bin in PATH.
    sed "s|@EXEC@|$LAUNCHER|g" "$PREFIX/share/trapgui.desktop.in" > "$DESKTOP_FILE"
    command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q "$APPS_DIR" 2>/dev/null || true
fi

echo "trapgui $VERSION is installed in $PREFIX"
echo "  start it from the applications menu or with: $LAUNCHER"
echo "  uninstall with: $UNINSTALLER (your data in $DATA_HOME/trapgui is kept)"
case ":$PATH:" in *":$BINDIR:"*) ;; *) echo "  note: $BINDIR is not in your PATH" ;; esac
exit 0
__TRAPGUI_PAYLOAD_BELOW__
