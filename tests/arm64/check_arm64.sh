#!/bin/sh
# make check-arm64: the project on arm64 Debian 12 "bookworm" (the base of Raspberry Pi OS) under qemu-user,
# emulating a Cortex-A72 (the Pi 4's core). Installs with the README's command, imports every native
# dependency, runs the demo there and here and compares the records. About 25 minutes the first time (the
# root is cached in $ROOT); run it after any dependency change. Needs root (debootstrap, chroot, binfmt).
set -eu
ROOT=${ROOT:-$HOME/.cache/vitaledge/arm64-bookworm}
REPO=$(cd "$(dirname "$0")/../.." && pwd)
SECONDS_RUN=${SECONDS_RUN:-30}
OUT=${OUT:-$REPO/.arm64}
mkdir -p "$OUT"

need=""
command -v debootstrap >/dev/null 2>&1 || need="$need debootstrap"
command -v qemu-aarch64-static >/dev/null 2>&1 || need="$need qemu-user-static binfmt-support"
if [ -n "$need" ]; then
    echo "installing:$need"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need
fi
# qemu-user reads QEMU_CPU: the emulated core is a Cortex-A72, so a wheel using newer instructions fails here.
export QEMU_CPU=cortex-a72
if [ ! -x "$ROOT/usr/bin/python3" ]; then
    echo "building arm64 bookworm root in $ROOT (cached)"
    mkdir -p "$ROOT"
    debootstrap --arch=arm64 --variant=minbase --include=python3,python3-venv,python3-pip,make,ca-certificates \
        bookworm "$ROOT" http://deb.debian.org/debian
fi
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64
mkdir -p "$ROOT/src"
tar -C "$REPO" --exclude=.venv --exclude=.git --exclude=.arm64 -cf - . | tar -C "$ROOT/src" -xf -
for fs in proc sys dev; do mountpoint -q "$ROOT/$fs" || mount --bind "/$fs" "$ROOT/$fs"; done
trap 'for fs in proc sys dev; do umount "$ROOT/$fs" 2>/dev/null || true; done' EXIT
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
# pip in the root trusts what pip here trusts: a network behind a TLS-inspecting proxy signs with its own CA,
# which this machine's bundle carries and a fresh debootstrap root's does not (Debian's pip reads the system
# bundle, not PIP_CERT's path, which does not exist in the root).
cp "${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}" "$ROOT/etc/ssl/certs/ca-certificates.crt"
unset PIP_CERT PIP_FIND_LINKS PIP_CONSTRAINT  # paths on this machine, not in the root

echo "== install (the README's command) and imports, on arm64"
# REUSE_VENV=1 keeps the root's venv from an earlier run (only the project's own code is copied in again).
install="rm -rf .venv && python3 -m venv .venv && .venv/bin/pip install -q -e ."
[ "${REUSE_VENV:-0}" = 1 ] && [ -x "$ROOT/src/.venv/bin/python" ] && install="true"
chroot "$ROOT" /bin/sh -c "cd /src && $install \
    && .venv/bin/python -c 'import numpy, scipy, cv2, pydantic_core, aiohttp, yaml, usb, onnxruntime; \
print(\"imports ok: onnxruntime\", onnxruntime.__version__, \"cv2\", cv2.__version__)'"
echo "== demo on arm64 (emulated) and here"
chroot "$ROOT" /bin/sh -c "cd /src && .venv/bin/vitaledge demo --fast --seconds $SECONDS_RUN --json --overlay-port 0 \
    --records /src/records-arm64.jsonl" > "$OUT/summary-arm64.json"
cp "$ROOT/src/records-arm64.jsonl" "$OUT/records-arm64.jsonl"
"$REPO/.venv/bin/vitaledge" demo --fast --seconds "$SECONDS_RUN" --json --overlay-port 0 \
    --records "$OUT/records-here.jsonl" > "$OUT/summary-here.json"
"$REPO/.venv/bin/python" "$REPO/tests/arm64/compare_records.py" "$OUT/records-here.jsonl" "$OUT/records-arm64.jsonl"
