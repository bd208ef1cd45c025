#!/usr/bin/env bash
# Runs one command as root inside a QEMU guest (software emulation, -accel tcg) that boots the
# installed Debian kernel with cgroup v2 only, and returns the command's exit status.
#
#   scripts/qemu/run-in-guest.sh [OPTIONS] -- CMD [ARGS...]
#
# The guest sees the host's whole root filesystem read-only (virtio-9p) under a tmpfs overlay,
# so every path (the repository, .build/release/sandbox-server, python3, gcc, ...) is the same
# inside; writes land in guest memory and are discarded. CMD runs with the caller's working
# directory, with fresh proc/sysfs/devtmpfs, a tmpfs /run, the host's /tmp under the overlay, and cgroup2 on /sys/fs/cgroup.
# Its stdout and stderr are streamed to this script's stdout and stderr (two serial lines).
#
# Options:
#   --timeout SECONDS   kill the guest after this long and fail with status 124 (default 600,
#                       or $QEMU_TIMEOUT)
#   --memory MIB        guest memory in MiB (default 2048, or $QEMU_MEMORY_MIB)
#   --smp N             virtual CPUs (default 2, or $QEMU_SMP)
#   --kernel VERSION    kernel to boot, e.g. 6.1.0-56-amd64 (default: newest /boot/vmlinuz-*
#                       that has /lib/modules/VERSION, or $QEMU_KERNEL_VERSION)
#   --env NAME[=VALUE]  pass an environment variable (repeatable). PATH, HOME, LANG, LC_*, TERM
#                       and every SANDBOX_* variable of the caller are passed automatically.
#   --console           also copy the guest's kernel console to stderr (boot debugging)
#                       (QEMU_NO_PVH=1: boot the installed bzImage instead of the extracted
#                       PVH-bootable vmlinux, see extract-vmlinux.sh; QEMU_CPU: -cpu model)
#   --quiet             no timing line on stderr at the end
#   --check             only check that the harness can run here (qemu, kernel, modules,
#                       busybox); prints the reason and exits 1 if not
#
# Exit status: CMD's status; 124 on timeout; 125 if the harness or guest setup failed
# (the last kernel console lines are printed and the full log kept in .build/qemu/last-console.log).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
state=$repo/.build/qemu

timeout_s=${QEMU_TIMEOUT:-600}
memory=${QEMU_MEMORY_MIB:-2048}
smp=${QEMU_SMP:-2}
kver=${QEMU_KERNEL_VERSION:-}
console=0
quiet=0
check_only=0
extra_env=()

die() { echo "run-in-guest: error: $*" >&2; exit 125; }
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 125; }

while [ $# -gt 0 ]; do
    case "$1" in
        --timeout) timeout_s=${2:?}; shift 2 ;;
        --timeout=*) timeout_s=${1#*=}; shift ;;
        --memory) memory=${2:?}; shift 2 ;;
        --memory=*) memory=${1#*=}; shift ;;
        --smp) smp=${2:?}; shift 2 ;;
        --smp=*) smp=${1#*=}; shift ;;
        --kernel) kver=${2:?}; shift 2 ;;
        --kernel=*) kver=${1#*=}; shift ;;
        --env) extra_env+=("${2:?}"); shift 2 ;;
        --env=*) extra_env+=("${1#*=}"); shift ;;
        --console) console=1; shift ;;
        --quiet) quiet=1; shift ;;
        --check) check_only=1; shift ;;
        -h|--help) usage ;;
        --) shift; break ;;
        *) echo "run-in-guest: unknown option $1" >&2; usage ;;
    esac
done
[[ $timeout_s =~ ^[0-9]+$ ]] || die "--timeout wants whole seconds, got '$timeout_s'"
[ $check_only = 1 ] || [ $# -gt 0 ] || usage

# ---- what the harness needs on this machine ----
problems=()
qemu=$(command -v qemu-system-x86_64 || true)
[ -n "$qemu" ] || problems+=("qemu-system-x86_64 not found (Debian package qemu-system-x86)")
if [ -z "$kver" ]; then
    # Prefer the generic Debian kernel (linux-image-amd64: 6.1.0-N-amd64) over flavours such as
    # -cloud-amd64 or -rt-amd64, which may lack drivers; then anything with its modules.
    all=$(ls /boot/vmlinuz-* 2>/dev/null | sed 's|^/boot/vmlinuz-||' | sort -rV)
    for k in $(grep -E '^[0-9.]+-[0-9]+-amd64$' <<<"$all") $all; do
        if [ -d "/lib/modules/$k" ]; then kver=$k; break; fi
    done
fi
kernel=/boot/vmlinuz-$kver
if [ -z "$kver" ]; then
    problems+=("no kernel image /boot/vmlinuz-* with modules in /lib/modules (Debian package linux-image-amd64)")
elif [ ! -r "$kernel" ]; then
    problems+=("kernel image $kernel missing or unreadable (run as root; Debian package linux-image-amd64)")
elif [ ! -d "/lib/modules/$kver" ]; then
    problems+=("no modules for $kver in /lib/modules")
fi
if ! { [ -x /bin/busybox ] || [ -x /usr/bin/busybox ]; }; then
    problems+=("busybox not found (Debian package busybox-static)")
fi
[ "$(id -u)" = 0 ] || problems+=("must run as root (the 9p share of / uses security_model=none)")
if [ ${#problems[@]} -gt 0 ]; then
    for p in "${problems[@]}"; do echo "run-in-guest: cannot run the QEMU harness: $p" >&2; done
    exit 1
fi
if [ $check_only = 1 ]; then
    echo "run-in-guest: ok: $qemu, kernel $kver"
    exit 0
fi

mkdir -p "$state/runs"
initrd=$(flock "$state/initramfs.lock" "$here/build-initramfs.sh" "$kver" "$state") || die "initramfs build failed"
# Boot the uncompressed ELF kernel through its PVH entry when it can be extracted (about twice as
# fast under emulation); QEMU_NO_PVH=1 boots the bzImage as installed.
boot_image=$kernel
if [ "${QEMU_NO_PVH:-}" != 1 ]; then
    elf=$(flock "$state/initramfs.lock" "$here/extract-vmlinux.sh" "$kver" "$state")
    [ -n "$elf" ] && boot_image=$elf
fi

# ---- the job: a bash script with the caller's cwd, selected environment and the command ----
run=$(mktemp -d "$state/runs/run.XXXXXX")
qemu_pid=
watchdog=
cleanup() {
    if [ -n "$qemu_pid" ] && kill -0 "$qemu_pid" 2>/dev/null; then kill "$qemu_pid" 2>/dev/null || true; fi
    if [ -n "$watchdog" ]; then kill "$watchdog" 2>/dev/null || true; fi
    rm -rf "$run"
}
trap cleanup EXIT
trap 'echo "run-in-guest: interrupted" >&2; exit 130' INT
trap 'echo "run-in-guest: terminated" >&2; exit 143' TERM

{
    echo "# generated by run-in-guest.sh"
    echo "exec 2>&4 4>&- 3>&-   # stderr = the second serial line (fds set up by guest-init.sh)"
    for v in PATH HOME LANG LANGUAGE TERM $(compgen -e | grep -E '^(LC_[A-Z_]+|SANDBOX_[A-Za-z0-9_]+)$' || true); do
        [ -n "${!v+x}" ] && printf 'export %s=%q\n' "$v" "${!v}"
    done
    for e in "${extra_env[@]}"; do
        case "$e" in
            *=*) printf 'export %s=%q\n' "${e%%=*}" "${e#*=}" ;;
            *)   [ -n "${!e+x}" ] && printf 'export %s=%q\n' "$e" "${!e}" ;;
        esac
    done
    echo "export QEMU_HARNESS_GUEST=1"
    printf 'cd -- %q || exit 125\n' "$PWD"
    printf 'exec'
    printf ' %q' "$@"
    printf '\n'
} >"$run/job.sh"

append="console=ttyS2 panic=-1 quiet loglevel=4 cgroup_no_v1=all mitigations=off nokaslr tsc=reliable ${QEMU_APPEND:-}"
con_path=$run/console.log
[ $console = 1 ] && con_path=/proc/self/fd/2

args=(
    -nodefaults -no-user-config -display none -monitor none -no-reboot
    -machine pc -accel tcg,thread=multi -cpu "${QEMU_CPU:-max}" -smp "$smp" -m "$memory"
    -kernel "$boot_image" -initrd "$initrd" -append "$append"
    # ttyS0 = CMD's stdout, ttyS1 = CMD's stderr, ttyS2 = kernel console
    -chardev file,id=out,path=/proc/self/fd/1,append=on -serial chardev:out
    -chardev file,id=err,path=/proc/self/fd/2,append=on -serial chardev:err
    -chardev file,id=con,path="$con_path",append=on -serial chardev:con
    -fsdev local,id=hostfs,path=/,security_model=none,readonly=on,multidevs=remap
    -device virtio-9p-pci,fsdev=hostfs,mount_tag=host
    -fsdev local,id=runfs,path="$run",security_model=none
    -device virtio-9p-pci,fsdev=runfs,mount_tag=harness
    -nic none
)

start=$(date +%s.%N)
# QEMU reopens /proc/self/fd/1 and /proc/self/fd/2 for the serial lines. Had they been our own
# stdout/stderr and those regular files, the reopened descriptions would have their own file
# offsets and overwrite what the caller writes. So QEMU writes into pipes and `cat` (which
# inherits our real stdout/stderr) copies the bytes out as they come.
exec 5> >(exec cat)
out_cat=$!
exec 6> >(exec cat >&2)
err_cat=$!
"$qemu" "${args[@]}" </dev/null >&5 2>&6 &
qemu_pid=$!
exec 5>&- 6>&-
# Watchdog: kill a guest that outlives the time limit.
# (Polls once a second, so no long sleep outlives the guest.)
(
    deadline=$((SECONDS + timeout_s))
    while [ "$SECONDS" -lt "$deadline" ]; do
        sleep 1
        kill -0 "$qemu_pid" 2>/dev/null || exit 0
    done
    touch "$run/timed-out"
    kill "$qemu_pid"
    for ((i = 0; i < 10; i++)); do sleep 1; kill -0 "$qemu_pid" 2>/dev/null || exit 0; done
    kill -9 "$qemu_pid"
) >/dev/null 2>&1 &
watchdog=$!
set +e
wait "$qemu_pid"
qemu_rc=$?
set -e
qemu_pid=
kill "$watchdog" 2>/dev/null || true
wait "$watchdog" 2>/dev/null || true
watchdog=
wait "$out_cat" "$err_cat" 2>/dev/null || true
end=$(date +%s.%N)
elapsed=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
[ -f "$run/console.log" ] && cp "$run/console.log" "$state/last-console.log"

show_console() {
    if [ -f "$run/console.log" ]; then
        echo "run-in-guest: last kernel console lines (full log: $state/last-console.log):" >&2
        tail -n 25 "$run/console.log" | sed 's/^/  | /' >&2
    fi
}
if [ -e "$run/timed-out" ]; then
    echo "run-in-guest: TIMEOUT: guest killed after ${timeout_s}s (--timeout)" >&2
    show_console
    exit 124
fi
if [ ! -f "$run/status" ]; then
    echo "run-in-guest: the guest ended (qemu status $qemu_rc) without reporting the command's exit status" >&2
    show_console
    exit 125
fi
status=$(cat "$run/status")
[[ $status =~ ^[0-9]+$ ]] || die "bad status '$status' from the guest"
if [ $quiet = 0 ]; then
    boot=$(cat "$run/boot-seconds" 2>/dev/null || echo '?')
    echo "run-in-guest: kernel $kver, boot ${boot}s (guest uptime), boot+run+poweroff ${elapsed}s wall, exit status $status" >&2
fi
exit "$status"
