#!/usr/bin/env bash
# End-to-end test of the per-user installer (run after build_linux.sh):
#
#   bash packaging/test_selfextract.sh [packaging/out/trapgui-<version>-linux-x86_64.run]
#
# In a throwaway HOME, as an ordinary user (nobody when started as root): checksum -> install
# without root -> launcher, menu entry, icon -> `trapgui --smoke` offscreen without network ->
# user data -> upgrade with a newer installer -> data unchanged -> a truncated installer fails
# cleanly and leaves the installed app working -> trapgui-uninstall -> program gone, data kept.
# Exits non-zero at the first failure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION="$(awk -F'"' '/^version *=/ { print $2; exit }' "$ROOT/pyproject.toml")"
RUNFILE="$(realpath "${1:-$ROOT/packaging/out/trapgui-${VERSION}-linux-x86_64.run}")"

n=0
pass() { n=$((n + 1)); printf 'ok %2d - %s\n' "$n" "$*"; }
fail() { printf 'FAILED - %s\n' "$*" >&2; exit 1; }
[ -f "$RUNFILE" ] || fail "no installer $RUNFILE (run packaging/build_linux.sh first)"

WORK="$(mktemp -d /tmp/trapgui-runtest.XXXXXX)"
chmod 755 "$WORK"
H="$WORK/home"
mkdir -p "$H"
trap 'rc=$?; rm -rf "$WORK"; [ $rc -eq 0 ] && echo "PASS: all $n checks" || echo "test_selfextract.sh: FAILED (exit $rc)" >&2' EXIT

if [ "$(id -u)" -eq 0 ]; then
    RUN_AS="${TRAPGUI_TEST_USER:-nobody}"
    chown "$RUN_AS" "$H" "$WORK"
    as_user() { runuser -u "$RUN_AS" -- env -i PATH=/usr/bin:/bin HOME="$H" LANG=C.UTF-8 \
                    QT_QPA_PLATFORM=offscreen "$@"; }
    offline_as_user() { unshare --net -- runuser -u "$RUN_AS" -- env -i PATH=/usr/bin:/bin \
                            HOME="$H" LANG=C.UTF-8 QT_QPA_PLATFORM=offscreen "$@"; }
else
    RUN_AS="$(id -un)"
    as_user() { env -i PATH=/usr/bin:/bin HOME="$H" LANG=C.UTF-8 QT_QPA_PLATFORM=offscreen "$@"; }
    offline_as_user() {
        if unshare --user --net true 2>/dev/null; then unshare --user --net -- env -i PATH=/usr/bin:/bin \
            HOME="$H" LANG=C.UTF-8 QT_QPA_PLATFORM=offscreen "$@"; else as_user "$@"; fi
    }
fi
as_user test -r "$RUNFILE" || fail "$RUN_AS cannot read $RUNFILE"
PREFIX="$H/.local/share/trapgui-app"
DATA="$H/.local/share/trapgui"
data_checksums() { (cd "$DATA" && find . -type f ! -name '*-wal' ! -name '*-shm' | sort | xargs sha256sum); }

echo "# installer: $(basename "$RUNFILE") ($(du -h "$RUNFILE" | cut -f1)), user $RUN_AS, HOME=$H"
[[ "$(as_user sh "$RUNFILE" --help)" == *--prefix* ]] || fail "--help"
out="$(as_user sh "$RUNFILE" --check)" || fail "--check: $out"
pass "--check: $out"

t0=$(date +%s)
as_user sh "$RUNFILE" > "$WORK/install.log" 2>&1 || { cat "$WORK/install.log"; fail "install"; }
pass "installed without root in $(( $(date +%s) - t0 ))s"
sed 's/^/    | /' "$WORK/install.log"
[ -x "$PREFIX/trapgui/trapgui" ] || fail "$PREFIX/trapgui/trapgui missing"
[ -x "$H/.local/bin/trapgui" ] || fail "launcher ~/.local/bin/trapgui missing"
[ -x "$H/.local/bin/trapgui-uninstall" ] || fail "~/.local/bin/trapgui-uninstall missing"
DESKTOP="$H/.local/share/applications/trapgui.desktop"
[ -f "$DESKTOP" ] || fail "menu entry $DESKTOP missing"
grep -qx "Exec=$H/.local/bin/trapgui" "$DESKTOP" || fail "menu entry Exec is not the absolute launcher path"
grep -qx 'Terminal=false' "$DESKTOP" || fail "menu entry must have Terminal=false"
[ -f "$H/.local/share/icons/hicolor/256x256/apps/trapgui.png" ] || fail "icon missing"
if command -v desktop-file-validate >/dev/null 2>&1; then desktop-file-validate "$DESKTOP" || fail "desktop-file-validate"; fi
[ -z "$(find "$PREFIX" "$H/.local" -user root 2>/dev/null)" ] || [ "$RUN_AS" = root ] || fail "root-owned files in the user install"
pass "files: $PREFIX, ~/.local/bin/trapgui(-uninstall), menu entry (absolute Exec, Terminal=false), icon"

out="$(as_user "$H/.local/bin/trapgui" --version)"
[ "$out" = "trapgui $VERSION" ] || fail "--version printed '$out'"
pass "trapgui --version: $out"
t0=$(date +%s)
if ! offline_as_user "$H/.local/bin/trapgui" --smoke > "$WORK/smoke.log" 2>&1; then
    cat "$WORK/smoke.log"; fail "trapgui --smoke"
fi
pass "trapgui --smoke offscreen without network: exit 0 in $(( $(date +%s) - t0 ))s"
sed 's/^/    | /' "$WORK/smoke.log" | tail -n 8

# --- user data ------------------------------------------------------------------------------
TRAP="$WORK/trap"
mkdir -p "$TRAP"
cp "$PREFIX/trapgui/_internal/resources/smoke.jpg" "$TRAP/20240601-223000.jpg"
cp "$PREFIX/trapgui/_internal/resources/smoke.jpg" "$TRAP/20240601-231500.jpg"
chmod -R a+rX "$TRAP"
as_user "$H/.local/bin/trapgui" scan "$TRAP" > "$WORK/scan.log" 2>&1 || { cat "$WORK/scan.log"; fail "trapgui scan"; }
[ -f "$DATA/trapgui.sqlite3" ] || fail "no database in $DATA"
as_user mkdir -p "$DATA/models"
as_user sh -c "head -c 1048576 /dev/urandom > '$DATA/models/fake-species-classifier.pt'"
nights_before="$(as_user "$H/.local/bin/trapgui" nights 2>&1)" || { echo "$nights_before"; fail "trapgui nights"; }
before="$(data_checksums)"
pass "user data in $DATA: $(echo "$before" | wc -l) files (database, a model file)"

# --- upgrade with a newer installer (the same payload, a higher version in the header) ------
UP_VERSION="${VERSION}.post1"
marker=$(awk '/^__TRAPGUI_PAYLOAD_BELOW__$/ { print NR; exit }' "$RUNFILE")
UPFILE="$WORK/trapgui-${UP_VERSION}-linux-x86_64.run"
{ head -n "$marker" "$RUNFILE" | sed "s/^VERSION=\"$VERSION\"$/VERSION=\"$UP_VERSION\"/"; tail -n +"$((marker + 1))" "$RUNFILE"; } > "$UPFILE"
chmod 755 "$UPFILE"
t0=$(date +%s)
as_user sh "$UPFILE" > "$WORK/upgrade.log" 2>&1 || { cat "$WORK/upgrade.log"; fail "upgrade"; }
[ "$(cat "$PREFIX/.trapgui-app")" = "$UP_VERSION" ] || fail "installed version is not $UP_VERSION after the upgrade"
[ -z "$(ls -d "$PREFIX".* 2>/dev/null)" ] || fail "upgrade left folders behind: $(ls -d "$PREFIX".*)"
pass "upgrade to $UP_VERSION in $(( $(date +%s) - t0 ))s, no staging folders left"
[ "$(data_checksums)" = "$before" ] || fail "user data changed during the upgrade"
nights_after="$(as_user "$H/.local/bin/trapgui" nights 2>&1)" || { echo "$nights_after"; fail "nights after upgrade"; }
[ "$nights_after" = "$nights_before" ] || fail "the upgraded app lists other nights"
pass "user data unchanged by the upgrade and readable by the upgraded app"

# --- a damaged download must fail clearly and leave the installed app alone ---------------
head -c 50000000 "$RUNFILE" > "$WORK/truncated.run"
rm -f "$UPFILE"
if as_user sh "$WORK/truncated.run" --check > "$WORK/trunc-check.log" 2>&1; then fail "--check accepted a truncated installer"; fi
if as_user sh "$WORK/truncated.run" > "$WORK/trunc.log" 2>&1; then fail "a truncated installer reported success"; fi
grep -q 'damaged or incomplete' "$WORK/trunc.log" || { cat "$WORK/trunc.log"; fail "no clear message for a truncated installer"; }
[ "$(cat "$PREFIX/.trapgui-app")" = "$UP_VERSION" ] || fail "the failed install changed the installed version"
as_user "$H/.local/bin/trapgui" --version > /dev/null || fail "installed app broken after a failed install"
[ -z "$(ls -d "$PREFIX".* 2>/dev/null)" ] || fail "failed install left folders behind"
pass "truncated installer: '$(tail -n1 "$WORK/trunc.log")'; installed app untouched"
before="$(data_checksums)"

# --- uninstall --------------------------------------------------------------------------------
as_user "$H/.local/bin/trapgui-uninstall" > "$WORK/uninstall.log" 2>&1 || { cat "$WORK/uninstall.log"; fail "trapgui-uninstall"; }
sed 's/^/    | /' "$WORK/uninstall.log"
[ ! -e "$PREFIX" ] || fail "$PREFIX left after uninstall"
[ ! -e "$H/.local/bin/trapgui" ] && [ ! -L "$H/.local/bin/trapgui-uninstall" ] || fail "launchers left after uninstall"
[ ! -e "$DESKTOP" ] || fail "menu entry left after uninstall"
[ ! -e "$H/.local/share/icons/hicolor/256x256/apps/trapgui.png" ] || fail "icon left after uninstall"
pass "uninstall removed the program, launchers, menu entry and icon"
[ "$(data_checksums)" = "$before" ] || fail "user data changed or deleted by the uninstall"
pass "user data still there after uninstall: $(echo "$before" | wc -l) files, identical sha256"
