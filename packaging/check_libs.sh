#!/usr/bin/env bash
# Lists shared libraries that the bundle's binaries need and this system cannot resolve:
#   bash packaging/check_libs.sh BUNDLE_DIR      (exit 1 and one line per problem if any)
# Allowed to be missing: the NVIDIA driver's libcuda / libnvidia-ml (present only with a GPU
# driver; torch then falls back to the CPU) and GTK 3 for Qt's optional GTK platform theme
# (Qt skips that plugin when GTK is absent; the .deb Recommends it for native dialogs).
# A library found elsewhere in the bundle counts as resolved: torchvision's operator libraries
# name libtorch*.so / libc10*.so, which `import torch` has already loaded by that name.
set -euo pipefail
BUNDLE="$1"
problems=0
bundled="$(find "$BUNDLE" \( -type f -o -type l \) -name '*.so*' -printf '%f\n' | sort -u)"
while IFS= read -r -d '' f; do
    case "$f" in */platformthemes/libqgtk3.so) continue ;; esac
    file -b "$f" 2>/dev/null | grep -q '^ELF' || continue
    missing=$(ldd "$f" 2>/dev/null | grep 'not found' | grep -v -E 'libcuda\.so|libnvidia-ml\.so' | awk '{print $1}' | sort -u \
              | grep -v -x -F -f <(echo "$bundled") | tr '\n' ' ' || true)
    if [ -n "$missing" ]; then
        echo "${f#"$BUNDLE"/}: $missing"
        problems=1
    fi
done < <(find "$BUNDLE" -type f \( -name '*.so' -o -name '*.so.*' -o -perm -u+x \) -print0)
exit $problems
