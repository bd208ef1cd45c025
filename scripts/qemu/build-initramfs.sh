#!/usr/bin/env bash
# Builds (or reuses) the guest initramfs for the QEMU harness and prints its path.
#
#   scripts/qemu/build-initramfs.sh KERNEL_VERSION [OUT_DIR]
#
# The initramfs holds only a static busybox, the guest init script (guest-init.sh) and the
# kernel modules needed to reach the host's root filesystem over virtio-9p and to put a tmpfs
# overlay on it (virtio_pci, 9pnet_virtio, 9p, overlay and their dependencies, in dependency
# order, taken from /lib/modules/KERNEL_VERSION; built-in modules are skipped, .ko.xz/.ko.zst/
# .ko.gz are decompressed here so busybox insmod can load them).
#
# It is cached as OUT_DIR/initramfs-KERNEL_VERSION.cpio.gz (default OUT_DIR: <repo>/.build/qemu)
# and rebuilt when the cache key changes: kernel version, modules.dep, busybox binary, init script,
# this script.
set -euo pipefail

kver=${1:?usage: build-initramfs.sh KERNEL_VERSION [OUT_DIR]}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
out_dir=${2:-$repo/.build/qemu}
moddir=/lib/modules/$kver
init_script=$here/guest-init.sh
image=$out_dir/initramfs-$kver.cpio.gz
stamp=$image.key

die() { echo "build-initramfs: error: $*" >&2; exit 1; }

[ -d "$moddir" ] || die "no modules for kernel $kver at $moddir (install linux-image-amd64)"
busybox=
for b in /bin/busybox /usr/bin/busybox; do
    [ -x "$b" ] || continue
    # Static? (`file` may be missing; ldd says "not a dynamic executable" for static binaries.)
    if file -L "$b" 2>/dev/null | grep -q 'statically linked' \
        || LC_ALL=C ldd "$b" 2>&1 | grep -qE 'not a dynamic executable|statically linked'; then
        busybox=$b; break
    fi
done
[ -n "$busybox" ] || die "no static busybox found (install busybox-static)"
[ -f "$init_script" ] || die "missing $init_script"

# Modules to load, in dependency order, without duplicates. `modprobe --show-depends` resolves the
# order from modules.dep and says "builtin NAME" for built-in ones.
wanted=(virtio_pci 9pnet_virtio 9p overlay)
modules=()
declare -A seen=()
for m in "${wanted[@]}"; do
    deps=$(modprobe -S "$kver" --show-depends "$m" 2>&1) || die "modprobe --show-depends $m failed: $deps"
    while read -r kind path _; do
        [ "$kind" = insmod ] || continue        # "builtin NAME": nothing to load
        [ -n "${seen[$path]:-}" ] && continue
        seen[$path]=1
        modules+=("$path")
    done <<<"$deps"
done

key=$( {
    echo "kernel=$kver"
    sha256sum "$moddir/modules.dep" "$busybox" "$init_script" "${BASH_SOURCE[0]}" "${modules[@]}" 2>/dev/null | cut -d" " -f1
    echo "modules=${modules[*]}"
} | sha256sum | cut -d' ' -f1)

if [ -f "$image" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ]; then
    echo "$image"
    exit 0
fi

mkdir -p "$out_dir"
stage=$(mktemp -d "$out_dir/initramfs-stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{bin,dev,proc,sys,mnt/host,mnt/rw,newroot,modules}
cp "$busybox" "$stage/bin/busybox"
ln -s busybox "$stage/bin/sh"
cp "$init_script" "$stage/init"
chmod 755 "$stage/init"

# Module signatures are dropped (unless the kernel enforces them): checking them costs seconds
# of boot time under software emulation, and the modules come from the installed package anyway.
# Layout of a signed module: ELF | signature | struct module_signature (12 bytes, __be32 sig_len
# last) | "~Module signature appended~\n" (28 bytes).
enforce=0
grep -q '^CONFIG_MODULE_SIG_FORCE=y' "/boot/config-$kver" 2>/dev/null && enforce=1
strip_signature() {
    local f=$1 size len
    [ $enforce = 0 ] || return 0
    [ "$(tail -c 28 "$f")" = "~Module signature appended~" ] || return 0
    size=$(stat -c %s "$f")
    len=$(tail -c 32 "$f" | head -c 4 | od -An -tu1 | awk '{ print $1 * 16777216 + $2 * 65536 + $3 * 256 + $4 }')
    [ "$len" -gt 0 ] && [ "$len" -lt "$size" ] || return 0
    truncate -s $((size - len - 40)) "$f"
}
: >"$stage/modules/order"
for path in "${modules[@]}"; do
    name=$(basename "$path")
    case "$name" in
        *.ko.xz)  xz -dc "$path" >"$stage/modules/${name%.xz}"; name=${name%.xz} ;;
        *.ko.zst) zstd -qdc "$path" >"$stage/modules/${name%.zst}"; name=${name%.zst} ;;
        *.ko.gz)  gzip -dc "$path" >"$stage/modules/${name%.gz}"; name=${name%.gz} ;;
        *.ko)     cp "$path" "$stage/modules/$name" ;;
        *) die "unexpected module file $path" ;;
    esac
    strip_signature "$stage/modules/$name"
    echo "$name" >>"$stage/modules/order"
done

if command -v cpio >/dev/null; then
    (cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0) | gzip -1 >"$image.tmp"
else
    (cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | "$busybox" cpio -o -H newc) | gzip -1 >"$image.tmp"
fi
mv "$image.tmp" "$image"
echo "$key" >"$stamp"
echo "build-initramfs: built $image (kernel $kver, ${#modules[@]} modules)" >&2
echo "$image"
