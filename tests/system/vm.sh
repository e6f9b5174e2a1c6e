#!/usr/bin/env bash
# The system-test VM: a Debian 12 guest with systemd as PID 1 and a pure
# cgroup v2 hierarchy (every controller), booted under qemu. This host's
# cgroup layout is hybrid (memory, cpu and pids belong to v1), so only the
# guest can enforce limits and run the launcher under a real systemd.
#
#   vm.sh image [PACKAGE...]   build the image unless a cached one matches
#   vm.sh run PAYLOAD_DIR      boot, run PAYLOAD_DIR/run.sh as root in the
#                              guest, power off; exit code = run.sh's
#   vm.sh shell                interactive boot, root on the console (Ctrl-a x)
#
# The image lives in $PL_VM_DIR (default build/vm): root.img (ext4, always
# booted with snapshot=on, so it stays pristine), vmlinux (the kernel's
# uncompressed ELF, booted through its PVH entry: no in-guest decompression)
# and initrd (busybox + the virtio/ext4 modules; a udev initramfs costs
# seconds under emulation). image.key records what it was built from (the
# image-building functions below, the guest files and the package list); a
# match means no rebuild.
#
# The payload directory is shared with the guest over 9p (mount tag
# "payload"); run.sh writes its results there. The guest has no network
# (-nic none). Nothing on the host is mounted or changed outside $PL_VM_DIR
# except the mounts debootstrap makes inside its own target directory.
#
# Environment: PL_VM_DIR, PL_VM_MIRROR (default: the host's apt mirror),
# PL_VM_MEM (MiB, 2048), PL_VM_SMP (2), PL_VM_TIMEOUT (seconds, 1200),
# PL_VM_ACCEL (kvm|tcg; default kvm only where it is hardware-backed).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
vm_dir=${PL_VM_DIR:-$top/build/vm}
rootfs=$vm_dir/rootfs
image=$vm_dir/root.img
mem=${PL_VM_MEM:-2048}
smp=${PL_VM_SMP:-2}
vm_timeout=${PL_VM_TIMEOUT:-1200}

# What every image holds; the launcher's runtime libraries come as arguments.
# openssl: the API TLS test makes its certificates in the guest; nftables:
# the egress test reads the launcher's table with nft; crun: the exported
# OCI seccomp profiles are loaded by it (oci_seccomp_crun_test.cc).
base_packages=(systemd systemd-sysv udev dbus linux-image-amd64 iproute2 procps kmod
               util-linux busybox-static openssl nftables crun)

log() { printf 'vm: %s\n' "$*" >&2; }
die() { printf 'vm: %s\n' "$*" >&2; exit 1; }

host_mirror() {
    local m=
    m=$(awk '/^URIs:/ && $2 ~ /debian\/?$/ { print $2; exit }' \
        /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
    [ -n "$m" ] || m=$(awk '$1 == "deb" && $0 !~ /security/ { print $2; exit }' \
        /etc/apt/sources.list 2>/dev/null || true)
    echo "${m:-http://deb.debian.org/debian}"
}

install_host_tools() {
    local need=()
    command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
    command -v debootstrap >/dev/null || need+=(debootstrap)
    command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
    command -v xz >/dev/null || need+=(xz-utils)
    [ ${#need[@]} -eq 0 ] && return
    log "installing ${need[*]}"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -q -y -o DPkg::Lock::Timeout=600 \
        --no-install-recommends "${need[@]}" >/dev/null
}

# --- image -------------------------------------------------------------------

bootstrap() {  # PACKAGES: comma-separated
    local mirror=${PL_VM_MIRROR:-$(host_mirror)} attempt
    for attempt in 1 2; do
        rm -rf "$rootfs"
        log "debootstrap bookworm from $mirror (attempt $attempt)"
        if debootstrap --variant=minbase --include="$1" bookworm "$rootfs" "$mirror" \
            >"$vm_dir/debootstrap.log" 2>&1; then
            return
        fi
        tail -n 5 "$vm_dir/debootstrap.log" >&2
    done
    die "debootstrap failed twice; see $vm_dir/debootstrap.log"
}

configure_guest() {
    echo pl-vm >"$rootfs/etc/hostname"
    printf '127.0.0.1 localhost\n127.0.1.1 pl-vm\n' >"$rootfs/etc/hosts"
    # By label: the root must be found whatever order the virtio disks get.
    printf 'LABEL=plroot / ext4 rw,errors=remount-ro 0 1\n' >"$rootfs/etc/fstab"
    chroot "$rootfs" passwd -d root >/dev/null
    # An empty machine-id: every boot of the snapshot gets a fresh one.
    : >"$rootfs/etc/machine-id"

    # Interactive boots (vm.sh shell) log root in on the console.
    local getty=$rootfs/etc/systemd/system/serial-getty@ttyS0.service.d
    mkdir -p "$getty"
    cat >"$getty/autologin.conf" <<'EOF'
[Unit]
ConditionKernelCommandLine=!pl.run=1
[Service]
ExecStart=
ExecStart=-/sbin/agetty --autologin root --keep-baud 115200,57600,38400,9600 %I $TERM
EOF
    # Boot time matters under emulation: no timers, no time sync, journal in RAM.
    local unit
    for unit in apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer \
        fstrim.timer e2scrub_reap.service systemd-pstore.service getty@tty1.service; do
        chroot "$rootfs" systemctl disable "$unit" >/dev/null 2>&1 || true
    done
    chroot "$rootfs" systemctl mask systemd-timesyncd.service getty-static.service \
        >/dev/null 2>&1 || true
    mkdir -p "$rootfs/etc/systemd/journald.conf.d"
    printf '[Journal]\nStorage=volatile\n' >"$rootfs/etc/systemd/journald.conf.d/pl-vm.conf"
    printf '9pnet_virtio\n9p\n' >"$rootfs/etc/modules-load.d/pl-vm.conf"

    install -m 0755 "$here/guest/pl-vm-runner" "$rootfs/usr/local/sbin/pl-vm-runner"
    cat >"$rootfs/etc/systemd/system/pl-vm-runner.service" <<'EOF'
[Unit]
Description=Run the pattern-launcher system-test payload, then power off
ConditionKernelCommandLine=pl.run=1
# After the boot transaction (Type=exec does not hold it up): the payload
# may wait for `systemctl is-system-running`.
After=multi-user.target
SuccessAction=poweroff-force
FailureAction=poweroff-force

[Service]
Type=exec
ExecStart=/usr/local/sbin/pl-vm-runner
StandardOutput=journal+console
TimeoutStartSec=infinity

[Install]
WantedBy=multi-user.target
EOF
    chroot "$rootfs" systemctl enable pl-vm-runner.service >/dev/null 2>&1
}

build_initrd_and_kernel() {
    local kver ird module file
    kver=$(ls "$rootfs/lib/modules" | sort -V | tail -n 1)
    ird=$vm_dir/initramfs.d
    rm -rf "$ird"
    mkdir -p "$ird"/{bin,dev,proc,sys,newroot}
    cp "$rootfs/bin/busybox" "$ird/bin/busybox"
    mknod -m 600 "$ird/dev/console" c 5 1
    : >"$ird/modules.list"
    for module in virtio_pci virtio_blk crc32c_generic ext4; do
        for file in $(chroot "$rootfs" modprobe -S "$kver" --show-depends "$module" |
            awk '$1 == "insmod" { print $2 }'); do
            grep -qxF "$file" "$ird/modules.list" && continue
            mkdir -p "$ird$(dirname "$file")"
            cp "$rootfs$file" "$ird$file"
            echo "$file" >>"$ird/modules.list"
        done
    done
    install -m 0755 "$here/guest/initramfs-init" "$ird/init"
    (cd "$ird" && find . | "$rootfs/bin/busybox" cpio -o -H newc 2>/dev/null | gzip -1) \
        >"$vm_dir/initrd"
    rm -rf "$ird"

    # The bzImage's payload is an xz stream; qemu boots the ELF inside it
    # through the PVH note (Debian builds CONFIG_PVH=y).
    local bz=$rootfs/boot/vmlinuz-$kver offset
    offset=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$bz" | awk -F: 'NR == 1 { print $1 }')
    [ -n "$offset" ] || die "no xz stream in $bz"
    tail -c +$((offset + 1)) "$bz" >"$vm_dir/vmlinux.xz"
    # Trailing data after the stream makes xz complain; --single-stream stops at its end.
    xz -dc --single-stream "$vm_dir/vmlinux.xz" >"$vm_dir/vmlinux"
    rm -f "$vm_dir/vmlinux.xz" "$rootfs"/boot/initrd.img-*
}

slim_rootfs() {
    local kver modules
    kver=$(ls "$rootfs/lib/modules" | sort -V | tail -n 1)
    modules=$rootfs/lib/modules/$kver/kernel
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin \
        "$rootfs"/var/lib/apt/lists/*_Packages "$rootfs"/usr/share/doc/* \
        "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
    rm -rf "$modules"/drivers/{gpu,media,net/wireless,net/ethernet,infiniband,bluetooth,staging} \
        "$modules"/drivers/{iio,isdn,hid,usb,scsi,ata,md,nvme,mtd,thunderbolt} \
        "$modules"/sound "$modules"/net/{wireless,mac80211,bluetooth}
    chroot "$rootfs" depmod "$kver"
}

make_image() {
    local size_mb
    # The tree plus 30 % and 512 MiB for what the tests write.
    size_mb=$(($(du -sm "$rootfs" | cut -f1) * 13 / 10 + 512))
    rm -f "$image"
    # -d fills the file system from a directory: no loop device, no mount.
    mkfs.ext4 -q -F -L plroot -E root_owner=0:0 -d "$rootfs" "$image" "${size_mb}M"
}

cmd_image() {
    local packages key
    packages=$(printf '%s\n' "${base_packages[@]}" "$@" | sort -u | paste -sd, -)
    # The key covers what shapes the image: the functions that build it, the
    # guest files they install and the package list (not the rest of this
    # script, so that editing how the VM boots does not cost a rebuild).
    key=$( (declare -f bootstrap configure_guest build_initrd_and_kernel slim_rootfs make_image
        printf '%s\n' "${base_packages[@]}"
        cat "$here/guest/pl-vm-runner" "$here/guest/initramfs-init"
        echo "$packages") | sha256sum | cut -d' ' -f1)
    if [ -f "$vm_dir/image.key" ] && [ "$(cat "$vm_dir/image.key")" = "$key" ] &&
        [ -f "$image" ] && [ -f "$vm_dir/vmlinux" ] && [ -f "$vm_dir/initrd" ]; then
        log "image up to date ($vm_dir)"
        return
    fi
    install_host_tools
    mkdir -p "$vm_dir"
    rm -f "$vm_dir/image.key"
    local start=$SECONDS
    bootstrap "$packages"
    configure_guest
    build_initrd_and_kernel
    slim_rootfs
    make_image
    rm -rf "$rootfs"
    echo "$key" >"$vm_dir/image.key"
    log "image built in $((SECONDS - start)) s: $(du -h "$image" | cut -f1) allocated"
}

# --- boot --------------------------------------------------------------------

accel_args() {
    local accel=${PL_VM_ACCEL:-}
    if [ -z "$accel" ]; then
        # /dev/kvm alone is not enough: a PVM-based one (nested, no VT-x/SVM)
        # runs a stock kernel by instruction emulation, far slower than TCG.
        if [ -w /dev/kvm ] && { [ -d /sys/module/kvm_intel ] || [ -d /sys/module/kvm_amd ]; }; then
            accel=kvm
        else
            accel=tcg
        fi
    fi
    log "accelerator $accel"
    if [ "$accel" = kvm ]; then
        echo "-accel kvm -cpu host"
    else
        # AVX off: glibc's AVX2 string functions are slow under TCG.
        echo "-accel tcg,thread=multi -cpu max,-svm,-avx,-avx2"
    fi
}

qemu_command() {  # MODE (run|shell) [PAYLOAD]
    local append="console=ttyS0 root=LABEL=plroot rw panic=-1 systemd.unified_cgroup_hierarchy=1"
    append+=" quiet loglevel=3 systemd.show_status=error"
    local extra=()
    if [ "$1" = run ]; then
        append+=" pl.run=1"
        extra=(-virtfs "local,path=$2,mount_tag=payload,security_model=none,id=payload")
    fi
    # shellcheck disable=SC2046
    echo qemu-system-x86_64 $(accel_args) -machine q35 -m "$mem" -smp "$smp" \
        -nodefaults -no-user-config -nographic -no-reboot \
        -kernel "$vm_dir/vmlinux" -initrd "$vm_dir/initrd" -append "'$append'" \
        -drive "file=$image,format=raw,if=virtio,cache=unsafe,snapshot=on" -nic none \
        "${extra[@]}"
}

require_image() {
    [ -f "$image" ] && [ -f "$vm_dir/vmlinux" ] && [ -f "$vm_dir/initrd" ] ||
        die "no image in $vm_dir: run '$0 image' first"
}

cmd_run() {
    [ $# -eq 1 ] || die "usage: vm.sh run PAYLOAD_DIR"
    local payload
    payload=$(cd "$1" && pwd)
    [ -f "$payload/run.sh" ] || die "$payload/run.sh is missing"
    require_image
    rm -rf "$payload/out"
    mkdir -p "$payload/out"
    local start=$SECONDS console=$payload/out/console.log qemu_rc=0
    # The console (ttyS0) goes to console.log; the payload's own output is
    # in out/log, which the guest writes over 9p as it goes.
    eval "timeout --kill-after=10 $vm_timeout $(qemu_command run "$payload")" \
        -serial "file:$console" </dev/null || qemu_rc=$?
    log "qemu exited with $qemu_rc after $((SECONDS - start)) s"
    if [ "$qemu_rc" = 124 ] || [ "$qemu_rc" = 137 ]; then
        log "the guest did not finish within ${vm_timeout} s (PL_VM_TIMEOUT); console tail:"
        tail -n 30 "$console" >&2
        return 124
    fi
    local rc
    rc=$(sed -n 's/.*PL-VM-RC=\([0-9]*\).*/\1/p' "$console" | tail -n 1)
    if [ -z "$rc" ]; then
        log "the guest never reported a result; console tail:"
        tail -n 30 "$console" >&2
        return 125
    fi
    return "$rc"
}

cmd_shell() {
    require_image
    eval "$(qemu_command shell)" -serial mon:stdio
}

case ${1:-} in
    image) shift; cmd_image "$@" ;;
    run) shift; cmd_run "$@" ;;
    shell) cmd_shell ;;
    *) sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
