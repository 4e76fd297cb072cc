#!/usr/bin/env bash
# End-to-end test of the .deb on this machine (needs root; run after build_linux.sh):
#
#   sudo bash packaging/test_deb.sh [packaging/out/trapgui_<version>_amd64.deb]
#
# install -> files, menu entry, libraries -> `trapgui --smoke` offscreen without network as an
# ordinary user -> a visible window under Xvfb started like the menu does (no terminal, no
# network) -> user data (catalogue database + a model file) -> upgrade to a newer version of the
# same package -> data unchanged and readable -> dpkg -r / dpkg -P -> nothing left under
# /opt/trapgui, /usr/bin/trapgui gone -> user data still there, byte for byte.
# Exits non-zero at the first failure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION="$(awk -F'"' '/^version *=/ { print $2; exit }' "$ROOT/pyproject.toml")"
DEB="${1:-$ROOT/packaging/out/trapgui_${VERSION}_amd64.deb}"
RUN_AS="${TRAPGUI_TEST_USER:-nobody}"

n=0
pass() { n=$((n + 1)); printf 'ok %2d - %s\n' "$n" "$*"; }
fail() { printf 'FAILED - %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || fail "run as root (dpkg -i)"
[ -f "$DEB" ] || fail "no package $DEB (run packaging/build_linux.sh first)"
if [[ "$(dpkg-query -W -f='${Status}' trapgui 2>/dev/null || true)" == *" installed" ]]; then
    fail "trapgui is already installed on this machine; remove it first (this test installs and purges it)"
fi

WORK="$(mktemp -d /tmp/trapgui-debtest.XXXXXX)"
chmod 755 "$WORK"
USER_HOME="$WORK/home"
mkdir -p "$USER_HOME"
chown "$RUN_AS" "$USER_HOME"
DATA="$USER_HOME/.local/share/trapgui"
installed_by_us=0
cleanup() {
    local rc=$?
    [ -n "${APP_PID:-}" ] && kill "$APP_PID" 2>/dev/null || true
    if [ "$installed_by_us" = 1 ] && dpkg-query -W trapgui >/dev/null 2>&1; then
        dpkg -P trapgui >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
    [ $rc -eq 0 ] && echo "PASS: all $n checks" || echo "test_deb.sh: FAILED (exit $rc)" >&2
}
trap cleanup EXIT

# Runs the installed app as an ordinary user with the test HOME and no network interface.
as_user() {
    unshare --net -- runuser -u "$RUN_AS" -- env -i PATH=/usr/bin:/bin HOME="$USER_HOME" \
        LANG=C.UTF-8 QT_QPA_PLATFORM="${QT_QPA_PLATFORM:-offscreen}" ${DISPLAY:+DISPLAY=$DISPLAY} "$@"
}
data_checksums() { (cd "$DATA" && find . -type f ! -name '*-wal' ! -name '*-shm' | sort | xargs sha256sum); }

echo "# package: $(basename "$DEB") ($(du -h "$DEB" | cut -f1))"
t0=$(date +%s)
dpkg -i "$DEB" > "$WORK/dpkg-install.log" 2>&1 || { cat "$WORK/dpkg-install.log"; fail "dpkg -i"; }
installed_by_us=1
pass "dpkg -i installed $(dpkg-query -W -f='${Package} ${Version}' trapgui) in $(( $(date +%s) - t0 ))s"

[ -x /opt/trapgui/trapgui ] && [ -d /opt/trapgui/_internal ] || fail "/opt/trapgui/trapgui missing"
[ -x /usr/bin/trapgui ] || fail "/usr/bin/trapgui missing"
DESKTOP=/usr/share/applications/trapgui.desktop
[ -f "$DESKTOP" ] || fail "$DESKTOP missing"
[ -f /usr/share/icons/hicolor/256x256/apps/trapgui.png ] || fail "menu icon missing"
grep -qx 'Terminal=false' "$DESKTOP" || fail "desktop entry must have Terminal=false"
if command -v desktop-file-validate >/dev/null 2>&1; then
    desktop-file-validate "$DESKTOP" || fail "desktop-file-validate $DESKTOP"
fi
pass "files in place: /opt/trapgui, /usr/bin/trapgui, $DESKTOP (Terminal=false), hicolor icon"

deps="$(dpkg-query -W -f='${Depends}' trapgui)"
[ -n "$deps" ] || fail "package has no Depends"
missing="$(bash "$ROOT/packaging/check_libs.sh" /opt/trapgui)" || fail "unresolved libraries: $missing"
pass "every bundled library resolves (Depends: $(echo "$deps" | tr ',' '\n' | wc -l) packages)"

out="$(as_user trapgui --version)"
[ "$out" = "trapgui $VERSION" ] || fail "trapgui --version printed '$out', expected 'trapgui $VERSION'"
pass "trapgui --version: $out"

t0=$(date +%s)
if ! as_user trapgui --smoke > "$WORK/smoke.log" 2>&1; then
    cat "$WORK/smoke.log"; fail "trapgui --smoke"
fi
pass "trapgui --smoke as $RUN_AS, offscreen, no network: exit 0 in $(( $(date +%s) - t0 ))s"
sed 's/^/    | /' "$WORK/smoke.log" | tail -n 8

# A visible window, started the way the menu starts it: the desktop entry's Exec line, no
# terminal (setsid, stdin/stdout/stderr not a tty), no network.
exec_cmd="$(sed -n 's/^Exec=//p' "$DESKTOP" | sed 's/ %[fFuU]//')"
cat > "$WORK/window.sh" <<WINDOW
#!/bin/bash
set -u
unshare --net -- runuser -u "$RUN_AS" -- env -i PATH=/usr/bin:/bin HOME="$USER_HOME" LANG=C.UTF-8 \
    DISPLAY="\$DISPLAY" XAUTHORITY="$WORK/xauth" setsid $exec_cmd < /dev/null > "$WORK/window.log" 2>&1 &
pid=\$!
kill_tree() { local c; for c in \$(pgrep -P "\$1"); do kill_tree "\$c"; done; kill "\$1" 2>/dev/null; }
for i in \$(seq 1 90); do
    # the app's top-level windows carry WM_CLASS ("trapgui" "trapgui"); Qt's 1x1 helper does not
    for id in \$(xwininfo -root -tree 2>/dev/null | grep '("trapgui" "trapgui")' | awk '{print \$1}'); do
        info=\$(xwininfo -id "\$id")
        w=\$(echo "\$info" | awk '/Width:/ {print \$2}')
        if echo "\$info" | grep -q 'IsViewable' && [ "\$w" -ge 200 ]; then
            echo "\$info" | grep -E 'xwininfo|Width|Height|Map State'
            kill_tree \$pid; exit 0
        fi
    done
    kill -0 \$pid 2>/dev/null || { echo "the app exited:"; cat "$WORK/window.log"; exit 1; }
    sleep 1
done
echo "no trapgui window after 90 s"; cat "$WORK/window.log"; kill_tree \$pid; exit 1
WINDOW
chmod 755 "$WORK/window.sh"
# the X authority file must be readable by the test user
t0=$(date +%s)
xvfb-run -a -f "$WORK/xauth" -s "-screen 0 1280x800x24" bash -c "chmod 644 '$WORK/xauth'; '$WORK/window.sh'" \
    > "$WORK/window-check.log" 2>&1 || { cat "$WORK/window-check.log"; fail "no visible window under Xvfb"; }
sed 's/^/    | /' "$WORK/window-check.log"
pass "installed app shows a viewable window under xvfb-run (Exec=$exec_cmd, no terminal, no network) after $(( $(date +%s) - t0 ))s"

# --- user data ------------------------------------------------------------------------------
TRAP="$WORK/trap"
mkdir -p "$TRAP"
cp /opt/trapgui/_internal/resources/smoke.jpg "$TRAP/20240601-223000.jpg"
cp /opt/trapgui/_internal/resources/smoke.jpg "$TRAP/20240601-231500.jpg"
chmod -R a+rX "$TRAP"
as_user trapgui scan "$TRAP" > "$WORK/scan.log" 2>&1 || { cat "$WORK/scan.log"; fail "trapgui scan"; }
[ -f "$DATA/trapgui.sqlite3" ] || fail "no catalogue database in $DATA after a scan"
as_user mkdir -p "$DATA/models"
head -c 1048576 /dev/urandom > "$DATA/models/fake-species-classifier.pt"
chown "$RUN_AS" "$DATA/models/fake-species-classifier.pt"
nights_before="$(as_user trapgui nights 2>&1)" || { echo "$nights_before"; fail "trapgui nights"; }
before="$(data_checksums)"
pass "user data created in $DATA: $(echo "$before" | wc -l) files (database from 'trapgui scan', a model file)"

# --- upgrade: the same package with a higher version (only the control member is rebuilt) ----
UP_VERSION="${VERSION}+upgradetest1"
UP="$WORK/up"
mkdir -p "$UP/control"
(cd "$UP" && ar x "$DEB")
ctrl=$(cd "$UP" && ls control.tar.*)
data=$(cd "$UP" && ls data.tar.*)
tar -xf "$UP/$ctrl" -C "$UP/control"
sed -i "s/^Version: .*/Version: $UP_VERSION/" "$UP/control/control"
rm "$UP/$ctrl"
tar -czf "$UP/control.tar.gz" --owner=0 --group=0 -C "$UP/control" .
(cd "$UP" && ar rc "trapgui_${UP_VERSION}_amd64.deb" debian-binary control.tar.gz "$data" && rm "$data")
t0=$(date +%s)
dpkg -i "$UP/trapgui_${UP_VERSION}_amd64.deb" > "$WORK/dpkg-upgrade.log" 2>&1 || { cat "$WORK/dpkg-upgrade.log"; fail "dpkg -i (upgrade)"; }
rm -rf "$UP"
got="$(dpkg-query -W -f='${Version}' trapgui)"
[ "$got" = "$UP_VERSION" ] || fail "after the upgrade dpkg reports version $got"
grep -q "Unpacking trapgui (${UP_VERSION}) over (${VERSION})" "$WORK/dpkg-upgrade.log" || { cat "$WORK/dpkg-upgrade.log"; fail "dpkg did not treat it as an upgrade"; }
pass "upgrade $VERSION -> $UP_VERSION with dpkg -i in $(( $(date +%s) - t0 ))s"
[ "$(data_checksums)" = "$before" ] || fail "user data changed during the upgrade"
nights_after="$(as_user trapgui nights 2>&1)" || { echo "$nights_after"; fail "trapgui nights after upgrade"; }
[ "$nights_after" = "$nights_before" ] || fail "the upgraded app lists other nights: $nights_after"
pass "user data unchanged by the upgrade (sha256 of every file) and the upgraded app reads the same nights"
as_user trapgui --smoke > "$WORK/smoke2.log" 2>&1 || { cat "$WORK/smoke2.log"; fail "--smoke after upgrade"; }
pass "trapgui --smoke after the upgrade"
before="$(data_checksums)"

# --- uninstall ------------------------------------------------------------------------------
dpkg -r trapgui > "$WORK/dpkg-remove.log" 2>&1 || { cat "$WORK/dpkg-remove.log"; fail "dpkg -r"; }
[ ! -e /opt/trapgui ] || { find /opt/trapgui | head; fail "files left under /opt/trapgui after dpkg -r"; }
[ ! -e /usr/bin/trapgui ] || fail "/usr/bin/trapgui left after dpkg -r"
[ ! -e "$DESKTOP" ] || fail "$DESKTOP left after dpkg -r"
[ ! -e /usr/share/icons/hicolor/256x256/apps/trapgui.png ] || fail "icon left after dpkg -r"
pass "dpkg -r: /opt/trapgui, /usr/bin/trapgui, menu entry and icon are gone"
dpkg -P trapgui > "$WORK/dpkg-purge.log" 2>&1 || { cat "$WORK/dpkg-purge.log"; fail "dpkg -P"; }
status="$(dpkg-query -W -f='${Status}' trapgui 2>/dev/null || true)"
if [ -n "$status" ] && [[ "$status" != *not-installed ]]; then
    fail "dpkg still knows trapgui after purge: $status"
fi
installed_by_us=0
pass "dpkg -P: package purged"
[ "$(data_checksums)" = "$before" ] || fail "user data changed or deleted by the uninstall"
pass "user data still there after remove + purge: $(echo "$before" | wc -l) files, identical sha256"
