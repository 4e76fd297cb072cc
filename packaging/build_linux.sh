#!/usr/bin/env bash
# Builds the Linux installers from a clean checkout with one command:
#
#   bash packaging/build_linux.sh
#
# 1. a build virtual environment (packaging/out/build-venv; reused while pyproject.toml and
#    scripts/constraints.txt are unchanged; pip's download cache makes a rebuild quick),
# 2. the PyInstaller onedir bundle (packaging/out/dist/trapgui) and its --smoke check,
# 3. packaging/out/trapgui_<version>_amd64.deb (root install under /opt/trapgui),
# 4. packaging/out/trapgui-<version>-linux-x86_64.run (per-user install into ~/.local, no root),
# then prints sizes and build times.
#
# Environment:
#   TRAPGUI_BUILD_VENV=DIR        use this virtual environment (must have pyinstaller) instead
#   TRAPGUI_TORCH_INDEX_URL=URL   take torch/torchvision from this index, e.g.
#                                 https://download.pytorch.org/whl/cpu for a CPU-only build
#                                 (venv packaging/out/build-venv-cpu, files named *-cpu)
#   TRAPGUI_SKIP=deb|run          skip one of the two packages
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PKG="$ROOT/packaging"
OUT="$PKG/out"
VERSION="$(awk -F'"' '/^version *=/ { print $2; exit }' "$ROOT/pyproject.toml")"
[ -n "$VERSION" ] || { echo "build: no version in pyproject.toml" >&2; exit 1; }
SUFFIX=""
[ -n "${TRAPGUI_TORCH_INDEX_URL:-}" ] && SUFFIX="-cpu"
START=$(date +%s)

log() { printf '\033[1m[build %s]\033[0m %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }
elapsed() { echo $(( $(date +%s) - $1 )); }

for f in resources/trapgui.png resources/trapgui.svg resources/smoke.jpg resources/models.json; do
    [ -f "$ROOT/$f" ] || die "$f is missing (the bundle, the menu icon and --smoke need it)"
done
for tool in dpkg-deb tar gzip sha256sum file ldd; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is needed"
done
mkdir -p "$OUT"
avail_gb=$(df -Pk "$OUT" | awk 'NR == 2 { print int($4 / 1048576) }')
[ "$avail_gb" -ge 25 ] || die "need about 25 GB free in $OUT (venv 6 GB, bundle 6 GB, packages 6 GB); have $avail_gb GB"

# --- 1. build environment -------------------------------------------------------------------
t0=$(date +%s)
if [ -n "${TRAPGUI_BUILD_VENV:-}" ]; then
    VENV="$TRAPGUI_BUILD_VENV"
    "$VENV/bin/python" -c "import PyInstaller" 2>/dev/null || die "$VENV has no pyinstaller"
else
    VENV="$OUT/build-venv$SUFFIX"
    stamp="$VENV/.trapgui-build-stamp"
    want="$(cat "$ROOT/pyproject.toml" "$ROOT/scripts/constraints.txt" | sha256sum | cut -d' ' -f1)${TRAPGUI_TORCH_INDEX_URL:-}"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        log "creating the build environment $VENV (first time: a few minutes, torch is large)"
        rm -rf "$VENV"
        python3 -m venv "$VENV"
        "$VENV/bin/python" -m pip install -q --upgrade pip
        if [ -n "${TRAPGUI_TORCH_INDEX_URL:-}" ]; then
            "$VENV/bin/python" -m pip install -q -c "$ROOT/scripts/constraints.txt" \
                --index-url "$TRAPGUI_TORCH_INDEX_URL" torch torchvision
        fi
        "$VENV/bin/python" -m pip install -q -c "$ROOT/scripts/constraints.txt" "$ROOT[timm,package]"
        # The bundle is built from the checkout (pathex), not from an installed copy.
        "$VENV/bin/python" -m pip uninstall -q -y trapgui
        echo "$want" > "$stamp"
    fi
fi
T_VENV=$(elapsed "$t0")

# --- 2. PyInstaller bundle -----------------------------------------------------------------
t0=$(date +%s)
log "freezing the app with PyInstaller"
rm -rf "$OUT/dist/trapgui"
"$VENV/bin/python" -m PyInstaller --noconfirm --log-level WARN \
    --distpath "$OUT/dist" --workpath "$OUT/build" "$PKG/trapgui.spec" > "$OUT/pyinstaller.log" 2>&1 \
    || { tail -n 40 "$OUT/pyinstaller.log" >&2; die "PyInstaller (full log: $OUT/pyinstaller.log)"; }
BUNDLE="$OUT/dist/trapgui"
[ -x "$BUNDLE/trapgui" ] || die "PyInstaller made no $BUNDLE/trapgui"
T_FREEZE=$(elapsed "$t0")

log "checking the bundle: --smoke offscreen, no unresolved libraries"
t0=$(date +%s)
smoke_home="$(mktemp -d)"
if ! HOME="$smoke_home" XDG_DATA_HOME="$smoke_home/data" XDG_CONFIG_HOME="$smoke_home/config" \
        QT_QPA_PLATFORM=offscreen "$BUNDLE/trapgui" --smoke > "$OUT/smoke.log" 2>&1; then
    cat "$OUT/smoke.log" >&2
    rm -rf "$smoke_home"
    die "the frozen app failed its --smoke run"
fi
rm -rf "$smoke_home"
sed 's/^/  smoke: /' "$OUT/smoke.log" | tail -n 5 >&2
missing="$(bash "$PKG/check_libs.sh" "$BUNDLE")" || die "libraries the bundle needs are missing: $missing"
ls "$BUNDLE"/_internal/torchvision/_C*.so >/dev/null 2>&1 || die "torchvision's operator library is not in the bundle"
T_SMOKE=$(elapsed "$t0")
bundle_kb=$(du -sk "$BUNDLE" | cut -f1)

# --- 3. .deb ------------------------------------------------------------------------------
DEB="$OUT/trapgui${SUFFIX}_${VERSION}_amd64.deb"
T_DEB=0
if [ "${TRAPGUI_SKIP:-}" != deb ]; then
    t0=$(date +%s)
    log "building $(basename "$DEB")"
    bash "$PKG/deb/make_deb.sh" "$BUNDLE" "$DEB" "$VERSION" "trapgui$SUFFIX"
    T_DEB=$(elapsed "$t0")
fi

# --- 4. self-extracting .run --------------------------------------------------------------
RUN="$OUT/trapgui${SUFFIX}-${VERSION}-linux-x86_64.run"
T_RUN=0
if [ "${TRAPGUI_SKIP:-}" != run ]; then
    t0=$(date +%s)
    log "building $(basename "$RUN")"
    bash "$PKG/selfextract/make_run.sh" "$BUNDLE" "$RUN" "$VERSION"
    T_RUN=$(elapsed "$t0")
fi

# --- summary ------------------------------------------------------------------------------
human() { numfmt --to=iec-i --suffix=B --round=nearest --format=%.2f "$1"; }
echo
echo "trapgui $VERSION Linux build ($(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ))"
printf '  %-44s %10s\n' "bundle packaging/out/dist/trapgui" "$(human $((bundle_kb * 1024)))"
[ "${TRAPGUI_SKIP:-}" = deb ] || printf '  %-44s %10s\n' "$(basename "$DEB")" "$(human "$(stat -c %s "$DEB")")"
[ "${TRAPGUI_SKIP:-}" = run ] || printf '  %-44s %10s\n' "$(basename "$RUN")" "$(human "$(stat -c %s "$RUN")")"
echo "  times: build venv ${T_VENV}s, PyInstaller ${T_FREEZE}s, smoke+ldd check ${T_SMOKE}s, deb ${T_DEB}s, run ${T_RUN}s, total $(elapsed "$START")s"
