#!/bin/sh
# /init of the QEMU harness guest (runs as PID 1 under the initramfs' static busybox).
#
# Stage 1 (initramfs): load the virtio/9p/overlay modules, mount the host's root filesystem
# (9p tag "host", read-only) under a tmpfs overlay at /newroot, mount the harness run directory
# (9p tag "harness", read-write: job.sh in, status out) at /newroot/run/qemu-harness, mount proc,
# sysfs, devtmpfs, devpts, /dev/shm, /run and cgroup2 (on /sys/fs/cgroup), then move
# /newroot onto / (like switch_root) and re-exec this script there as stage 2 (still PID 1, so
# the kernel's usermode helpers such as modprobe see the same root).
# Stage 2 (new root): run /run/qemu-harness/job.sh with the host's bash, its stdout on ttyS0 and
# stderr on ttyS1 (the host streams both), write its exit status to /run/qemu-harness/status and
# power off. Kernel messages and this script's own log go to the console (ttyS2, a log file).
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

if [ "$1" != stage2 ]; then
    B=/bin/busybox
    $B mkdir -p /proc /sys /dev /sbin /usr/bin /usr/sbin
    $B mount -t proc proc /proc
    $B mount -t sysfs sysfs /sys
    $B mount -t devtmpfs devtmpfs /dev
    $B --install -s
    exec </dev/null >/dev/console 2>&1
    log() { echo "guest-init: $*"; }
    fail() {
        log "FATAL: $*"
        echo "qemu-harness: guest setup failed: $*" >/dev/ttyS1 2>/dev/null
        [ -d /mnt/rw/. ] && mountpoint -q /mnt/rw && echo 125 >/mnt/rw/status && sync
        poweroff -f
        sleep 5; echo o >/proc/sysrq-trigger
    }
    log "stage 1: kernel $(uname -r), $(nproc) CPUs, uptime $(cut -d' ' -f1 /proc/uptime)s"
    while read -r ko; do
        name=${ko%.ko}
        # Already loaded (or built in): skip. insmod of a loaded module fails with EEXIST.
        if [ -d "/sys/module/$(echo "$name" | tr - _)" ]; then continue; fi
        insmod "/modules/$ko" || fail "insmod $ko failed"
    done </modules/order

    mkdir -p /mnt/host /mnt/rw /mnt/ovl /newroot
    # The 9p devices appear asynchronously after virtio_pci probes them: retry briefly.
    n=0
    until mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=524288,cache=loose host /mnt/host 2>/dev/null; do
        n=$((n + 1)); [ $n -ge 50 ] && fail "cannot mount the 9p share 'host'"
        sleep 0.1
    done
    mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288 harness /mnt/rw || fail "cannot mount the 9p share 'harness'"
    mount -t tmpfs -o mode=755 ovl /mnt/ovl || fail "tmpfs for the overlay"
    mkdir -p /mnt/ovl/upper /mnt/ovl/work
    mount -t overlay overlay -o lowerdir=/mnt/host,upperdir=/mnt/ovl/upper,workdir=/mnt/ovl/work /newroot \
        || fail "cannot mount the overlay on the host root"

    R=/newroot
    mount -t proc proc $R/proc || fail "proc"
    mount -t sysfs sysfs $R/sys || fail "sysfs"
    mount -t cgroup2 -o nsdelegate cgroup2 $R/sys/fs/cgroup || fail "cgroup2"
    mount -t devtmpfs devtmpfs $R/dev || fail "devtmpfs"
    mkdir -p $R/dev/pts $R/dev/shm
    mount -t devpts -o newinstance,ptmxmode=0666 devpts $R/dev/pts || fail "devpts"
    mount -t tmpfs -o mode=1777 shm $R/dev/shm || fail "/dev/shm"
    # No separate tmpfs on /tmp: the overlay already makes it writable, and the host's /tmp must
    # stay visible (a checkout, CI's included, may live there).
    mount -t tmpfs -o mode=755 run $R/run || fail "/run"
    mkdir -p $R/run/qemu-harness $R/run/qemu-harness-bin
    mount --move /mnt/rw $R/run/qemu-harness || fail "move the harness share"
    cp /bin/busybox /init $R/run/qemu-harness-bin/ || fail "copy busybox"
    hostname qemu-guest
    ip link set lo up 2>/dev/null
    log "stage 1 done at uptime $(cut -d' ' -f1 /proc/uptime)s"
    # Make the overlay the root of the mount namespace (what switch_root does, minus deleting
    # the initramfs): a plain chroot would leave the job "chrooted", and the kernel refuses
    # CLONE_NEWUSER (user namespaces) to chrooted processes.
    cd $R || fail "cd $R"
    mount --move . / || fail "mount --move $R /"
    exec chroot . /run/qemu-harness-bin/busybox sh /run/qemu-harness-bin/init stage2
    fail "chroot into the new root failed"
fi

# ---- stage 2: PID 1 in the new root ----
B=/run/qemu-harness-bin/busybox
H=/run/qemu-harness
exec </dev/null >/dev/console 2>&1
$B cut -d' ' -f1 /proc/uptime >$H/boot-seconds
echo "guest-init: stage 2: running $H/job.sh at uptime $($B cat $H/boot-seconds)s"
# Open the two streamed serial lines once, for the whole job (open/close cycles of a serial
# port can drop bytes), raw: no \n -> \r\n translation.
exec 3>/dev/ttyS0 4>/dev/ttyS1
$B stty raw -echo <&3 2>/dev/null
$B stty raw -echo <&4 2>/dev/null
if [ -x /bin/bash ]; then
    # job.sh moves its stderr to fd 4 itself (first line), so that this shell's own "Killed"
    # report for a job ended by a signal goes to the console log, not into the job's stderr.
    /bin/bash $H/job.sh </dev/null >&3 2>/dev/console
    rc=$?
else
    echo "qemu-harness: /bin/bash not found in the shared root" >&4
    rc=125
fi
# Let the UARTs drain before the power goes: stty waits for pending output (tcsetattr TCSADRAIN).
$B stty raw <&3 2>/dev/null
$B stty raw <&4 2>/dev/null
$B sleep 0.3
echo "$rc" >$H/status.tmp && $B mv $H/status.tmp $H/status
echo "guest-init: job exited with status $rc at uptime $($B cut -d' ' -f1 /proc/uptime)s; powering off"
$B sync
$B poweroff -f
$B sleep 5
echo o >/proc/sysrq-trigger
