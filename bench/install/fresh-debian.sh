#!/usr/bin/env bash
# Times the README's first command on a fresh Debian 12 (bookworm) root: debootstrap's minimal system in a chroot,
# a clean clone of this repository, then setup-runtime.sh, the configure and build of the winnow target, and the
# first generate (which fetches the default model). Run as root on an otherwise idle machine; needs debootstrap
# (apt-get install debootstrap) and network access to deb.debian.org and pypi.org. ~4 min.
#   bench/install/fresh-debian.sh [ROOT_DIR]      (default: a new directory under /tmp, removed afterwards)
# CA certificates added to this machine under /usr/local/share/ca-certificates (a proxy's, say) are copied into the
# fresh root, so that its own ca-certificates package trusts the same network this machine does.
set -euo pipefail
[ "$(id -u)" -eq 0 ] || { echo "fresh-debian.sh: run as root (debootstrap and chroot)" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "fresh-debian.sh: debootstrap not found (apt-get install debootstrap)" >&2; exit 1; }
repo=$(cd "$(dirname "$0")/../.." && pwd)
created=0
if [ -n "${1:-}" ]; then root=$1; else root=$(mktemp -d /tmp/fresh-debian.XXXXXX); created=1; fi
cleanup() {
  for m in proc dev sys; do if mountpoint -q "$root/$m"; then umount "$root/$m"; fi; done
  if [ "$created" = 1 ]; then rm -rf "$root" "$root.debootstrap.log"; fi
}
trap cleanup EXIT
echo "fresh-debian: debootstrap bookworm (minbase) into $root" >&2
debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian > "$root.debootstrap.log" 2>&1
mkdir -p "$root/usr/local/share/ca-certificates"
cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/" 2>/dev/null || true
cp /etc/resolv.conf "$root/etc/resolv.conf"
git clone -q "$repo" "$root/root/winnow"
cat > "$root/root/first-command.sh" <<'INNER'
#!/bin/bash
set -e
cd /root/winnow
t0=$(date +%s)
./scripts/setup-runtime.sh
t1=$(date +%s)
cmake -S . -B build -DWINNOW_BUILD_TESTS=OFF -DWINNOW_BUILD_BENCH=OFF > /root/cmake.log
cmake --build build -j --target winnow > /root/build.log 2>&1
t2=$(date +%s)
./build/src/winnow generate --chat -p "Give me three tips for learning to cook." -n 128 --stats
t3=$(date +%s)
echo "packages: $((t1 - t0)) s; configure+build: $((t2 - t1)) s; fetch+generate: $((t3 - t2)) s; total: $((t3 - t0)) s ($(nproc) cores)"
INNER
mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"
mount --bind /sys "$root/sys"
chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin /bin/bash /root/first-command.sh
