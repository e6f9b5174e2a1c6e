# strict: an allow-list for a typical network daemon (dynamically linked C/C++
# with glibc, libstdc++, libsystemd's sd_listen_fds/sd_notify, threads, epoll,
# signalfd, timerfd, TCP/UDP/unix sockets). Everything else fails with ENOSYS:
# "this kernel has no such call" is what libraries already handle for new
# syscalls (clone3 -> clone, statx -> newfstatat, faccessat2 -> faccessat,
# close_range -> a close loop, ...), so they take their fallback instead of
# treating the refusal as a fatal permission error. See docs/seccomp.md.
#
# Not allowed on purpose: anything that changes the file system other than
# writing to an opened file (mkdir, unlink, rename, link, chmod, chown, ...),
# identity changes, namespaces, mounts, ptrace, and everything the default
# profile denies. Syscall names are x86_64's; a name the native architecture
# lacks is skipped.

default errno ENOSYS

# Program start: execve of the pattern itself, the dynamic loader, glibc init.
allow: execve execveat brk arch_prctl set_tid_address set_robust_list rseq
allow: prlimit64 getrlimit getrandom uname sysinfo prctl restart_syscall

# Memory.
allow: mmap munmap mprotect mremap madvise msync mincore membarrier
allow: mlock mlock2 munlock

# Threads and processes: clone for pthread_create and fork (clone3 is left
# out: glibc falls back to clone, whose flags a filter can see), fork/vfork
# since clone allows the same, waiting, futexes, scheduling.
allow: fork vfork wait4 waitid futex sched_yield sched_getaffinity
allow: exit exit_group
# clone is allowed except with a namespace flag, which gets EPERM like in the
# default profile (unshare and setns are not allowed at all). The `else` is
# needed because this profile's default is ENOSYS. No CLONE_NEWTIME: clone
# cannot ask for it (its bit is the exit-signal byte).
errno EPERM: clone if flags & CLONE_NEWNS|CLONE_NEWUTS|CLONE_NEWIPC|CLONE_NEWUSER|CLONE_NEWPID|CLONE_NEWNET|CLONE_NEWCGROUP else allow

# Identity and time (mostly answered by the vDSO; these are its fallbacks).
allow: getpid gettid getppid getpgrp getpgid getsid
allow: getuid geteuid getgid getegid getresuid getresgid getgroups
allow: clock_gettime clock_getres clock_nanosleep nanosleep gettimeofday time times getrusage

# Signals.
allow: rt_sigaction rt_sigprocmask rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_sigpending
allow: sigaltstack kill tgkill tkill pause

# Reading files, and reading and writing open descriptors.
allow: open openat close close_range read pread64 readv preadv preadv2
allow: write pwrite64 writev pwritev pwritev2 lseek sendfile
allow: stat fstat lstat newfstatat statx statfs fstatfs
allow: access faccessat faccessat2 readlink readlinkat getdents64 getcwd chdir fchdir
allow: fcntl ioctl flock fsync fdatasync ftruncate fadvise64 umask
allow: dup dup2 dup3 pipe pipe2

# Event loops.
allow: epoll_create epoll_create1 epoll_ctl epoll_wait epoll_pwait epoll_pwait2
allow: poll ppoll select pselect6
allow: eventfd eventfd2 signalfd signalfd4 timerfd_create timerfd_settime timerfd_gettime

# Sockets.
allow: socket socketpair bind listen accept accept4 connect shutdown
allow: getsockname getpeername setsockopt getsockopt
allow: sendto recvfrom sendmsg recvmsg sendmmsg recvmmsg
