#!/usr/bin/env bash
# Prints the path of an uncompressed, PVH-bootable ELF kernel extracted from /boot/vmlinuz-KVER,
# cached as OUT_DIR/vmlinux-KVER (re-extracted when the bzImage changes). Prints nothing and
# exits 0 when that is not possible; the caller then boots the bzImage as it is.
#
#   scripts/qemu/extract-vmlinux.sh KVER OUT_DIR
#
# Why: under software emulation the guest spends seconds decompressing the bzImage (and going
# through real-mode setup); QEMU boots an ELF vmlinux with a PVH entry note (CONFIG_PVH=y, as in
# Debian's kernels) directly, which halves the boot time of the harness.
set -uo pipefail
kver=${1:?usage: extract-vmlinux.sh KVER OUT_DIR}
out_dir=${2:?usage: extract-vmlinux.sh KVER OUT_DIR}
src=/boot/vmlinuz-$kver
dst=$out_dir/vmlinux-$kver
[ -r "$src" ] || exit 0
key="$(stat -c '%s %Y' "$src")"
if [ -s "$dst" ] && [ "$(cat "$dst.key" 2>/dev/null)" = "$key" ]; then
    echo "$dst"
    exit 0
fi
command -v readelf >/dev/null || exit 0
mkdir -p "$out_dir"
tmp=$dst.tmp.$$
trap 'rm -f "$tmp"' EXIT
# Try each compression format's magic at each offset where it occurs in the bzImage.
try() { # MAGIC DECOMPRESSOR...
    local magic=$1 off
    shift
    command -v "$1" >/dev/null || return 1
    for off in $(LC_ALL=C grep -abo "$magic" "$src" 2>/dev/null | cut -d: -f1 | head -5); do
        tail -c +$((off + 1)) "$src" | "$@" >"$tmp" 2>/dev/null
        # ELF with a Xen note of type 0x12 (XEN_ELFNOTE_PHYS32_ENTRY): PVH-bootable.
        if [ "$(head -c 4 "$tmp" | od -An -c | tr -d ' ')" = '177ELF' ] \
            && LC_ALL=C readelf -n "$tmp" 2>/dev/null | grep -qiE 'Unknown note type: \(0x00000012\)|PHYS32_ENTRY'; then
            return 0
        fi
    done
    return 1
}
if try $'\xfd7zXZ\x00' xz -dc || try $'\x28\xb5\x2f\xfd' zstd -qdc || try $'\x1f\x8b\x08' gzip -dc \
    || try $'\x02\x21\x4c\x18' lz4 -dc; then
    mv "$tmp" "$dst"
    echo "$key" >"$dst.key"
    echo "$dst"
fi
exit 0
