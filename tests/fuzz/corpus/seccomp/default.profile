# default: everything is allowed except what a pattern in a multi-tenant host
# never needs and what would let it reach past its own sandbox. Most of these
# already need a capability the child has dropped; the filter is the second,
# independent line (and also covers what needs none: unshare of a user
# namespace, keyrings, userfaultfd, io_uring, bpf/perf where unprivileged use is
# enabled).
#
# Denials answer EPERM, the errno the kernel itself gives for a missing
# privilege, so libraries that probe a feature take their "not permitted" path
# instead of dying. See docs/seccomp.md for why none of these is `kill`.
# Syscall names are x86_64's; a name the native architecture lacks is skipped.

default allow

# Loading kernel code or replacing the kernel.
errno EPERM: init_module finit_module delete_module
errno EPERM: create_module get_kernel_syms query_module   # obsolete, still numbered
errno EPERM: kexec_load kexec_file_load reboot

# Mount table and root directory: the launcher builds the view, the pattern
# must not rearrange it (old and new mount APIs).
errno EPERM: mount umount2 pivot_root chroot
errno EPERM: move_mount open_tree fsopen fsconfig fsmount fspick mount_setattr

# Namespaces: creating or joining one (unshare(CLONE_NEWUSER) needs no
# capability) is the first step of most container escapes.
errno EPERM: unshare setns

# clone3 passes its flags in memory, where seccomp cannot see them; ENOSYS
# makes glibc (2.34+) fall back to clone, whose flags are a register.
errno ENOSYS: clone3

# ... so that the namespace flags of clone can be refused here: clone with
# any CLONE_NEW* flag gets EPERM (CLONE_NEWUSER needs no capability), while
# threads, fork and posix_spawn (no such flag) keep the default. No
# CLONE_NEWTIME: its bit is clone's exit-signal byte, so only clone3 and
# unshare can ask for a time namespace, and both are refused above.
errno EPERM: clone if flags & CLONE_NEWNS|CLONE_NEWUTS|CLONE_NEWIPC|CLONE_NEWUSER|CLONE_NEWPID|CLONE_NEWNET|CLONE_NEWCGROUP

# Inspecting or manipulating other processes.
errno EPERM: ptrace process_vm_readv process_vm_writev process_madvise
errno EPERM: kcmp pidfd_getfd

# Kernel attack surface that patterns have no use for: eBPF, perf events,
# userfaultfd (used to win kernel races), io_uring (a large share of recent
# kernel exploits), the kernel keyring (not namespaced), x86 LDT changes.
errno EPERM: bpf perf_event_open userfaultfd lookup_dcookie
errno EPERM: io_uring_setup io_uring_enter io_uring_register
errno EPERM: keyctl add_key request_key
errno EPERM: modify_ldt

# File handles bypass path-based access checks (the "shocker" escape).
errno EPERM: open_by_handle_at

# The host's clock is shared by every tenant.
errno EPERM: clock_settime clock_adjtime settimeofday adjtimex

# Host administration: swap, quotas, accounting, I/O ports, the kernel log,
# terminals, notification of every file access, obsolete interfaces.
errno EPERM: swapon swapoff quotactl quotactl_fd acct
errno EPERM: iopl ioperm vhangup syslog fanotify_init
errno EPERM: nfsservctl uselib sysfs _sysctl
