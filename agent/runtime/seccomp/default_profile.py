"""Our default profile: the effect of docker's default seccomp profile, written here.

Blocked calls fail with EPERM. Allowed: the ordinary syscalls of a process (below),
plus, by capability, what that capability exists for (a container given CAP_SYS_ADMIN
may mount and unshare; one given CAP_SYS_PTRACE may use process_vm_*). Without
CAP_SYS_ADMIN, clone may not make namespaces and clone3 answers ENOSYS (its flags sit
in memory a filter cannot read), so libc falls back to clone. personality takes only
its harmless values. socket is refused for AF_VSOCK (the host's vsock). Never allowed:
keyctl, add_key, request_key (the keyring is not namespaced), userfaultfd, io_uring_*
(a large attack surface, also out of docker's profile since 25.0), kexec_*, swapon and
the like. Names not on this machine's ABI are skipped by `resolve`.
"""

from __future__ import annotations

import functools

from pyswarm.agent.runtime.seccomp.profile import (
    ALLOW,
    ENOSYS,
    EPERM,
    Condition,
    Gate,
    Profile,
    Rule,
)

ALWAYS_ALLOWED = """
accept accept4 access adjtimex alarm bind brk cachestat capget capset chdir chmod
chown clock_adjtime clock_getres clock_gettime clock_nanosleep close close_range
connect copy_file_range creat dup dup2 dup3 epoll_create epoll_create1 epoll_ctl
epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2
execve execveat exit exit_group faccessat faccessat2 fadvise64 fallocate fanotify_mark
fchdir fchmod fchmodat fchmodat2 fchown fchownat fcntl fdatasync fgetxattr flistxattr
flock fork fremovexattr fsetxattr fstat fstatfs fsync ftruncate futex futex_requeue
futex_wait futex_waitv futex_wake futimesat get_robust_list get_thread_area getcpu
getcwd getdents getdents64 getegid geteuid getgid getgroups getitimer getpeername
getpgid getpgrp getpid getppid getpriority getrandom getresgid getresuid getrlimit
getrusage getsid getsockname getsockopt gettid gettimeofday getuid getxattr getxattrat
inotify_add_watch inotify_init inotify_init1 inotify_rm_watch io_cancel io_destroy
io_getevents io_pgetevents io_setup io_submit ioctl ioprio_get ioprio_set kill
landlock_add_rule landlock_create_ruleset landlock_restrict_self lchown lgetxattr link
linkat listen listxattr listxattrat llistxattr lremovexattr lseek lsetxattr
lsm_get_self_attr lsm_list_modules lstat madvise map_shadow_stack membarrier
memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall
mmap mprotect mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedsend mq_unlink
mremap mseal msgctl msgget msgrcv msgsnd msync munlock munlockall munmap
name_to_handle_at nanosleep newfstatat open openat openat2 pause pidfd_open
pidfd_send_signal pipe pipe2 pkey_alloc pkey_free pkey_mprotect poll ppoll prctl
pread64 preadv preadv2 prlimit64 process_mrelease pselect6 pwrite64 pwritev pwritev2
read readahead readlink readlinkat readv recvfrom recvmmsg recvmsg remap_file_pages
removexattr removexattrat rename renameat renameat2 restart_syscall rmdir rseq
rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend
rt_sigtimedwait rt_tgsigqueueinfo sched_get_priority_max sched_get_priority_min
sched_getaffinity sched_getattr sched_getparam sched_getscheduler
sched_rr_get_interval sched_setaffinity sched_setattr sched_setparam
sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop sendfile
sendmmsg sendmsg sendto set_robust_list set_thread_area set_tid_address setfsgid
setfsuid setgid setgroups setitimer setpgid setpriority setregid setresgid setresuid
setreuid setrlimit setsid setsockopt setuid setxattr setxattrat shmat shmctl shmdt
shmget shutdown sigaltstack signalfd signalfd4 socketpair splice stat statfs statx
symlink symlinkat sync sync_file_range syncfs sysinfo tee tgkill time timer_create
timer_delete timer_getoverrun timer_gettime timer_settime timerfd_create
timerfd_gettime timerfd_settime times tkill truncate umask uname unlink unlinkat utime
utimensat utimes vfork vmsplice wait4 waitid write writev
"""

# Syscalls a capability exists for: allowed only to a process holding it.
BY_CAPABILITY: dict[str, str] = {
    "CAP_SYS_ADMIN": """
        bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick listmount
        lookup_dcookie mount mount_setattr move_mount open_tree open_tree_attr
        perf_event_open quotactl quotactl_fd setdomainname sethostname setns statmount
        syslog umount2 unshare
    """,
    "CAP_SYS_BOOT": "reboot",
    "CAP_SYS_CHROOT": "chroot",
    "CAP_SYS_MODULE": "delete_module init_module finit_module",
    "CAP_SYS_PACCT": "acct",
    "CAP_SYS_PTRACE": "kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace",
    "CAP_SYS_RAWIO": "iopl ioperm",
    "CAP_SYS_TIME": "settimeofday clock_settime",
    "CAP_SYS_TTY_CONFIG": "vhangup",
    "CAP_SYS_NICE": "get_mempolicy mbind set_mempolicy set_mempolicy_home_node",
    "CAP_SYSLOG": "syslog",
    "CAP_BPF": "bpf",
    "CAP_PERFMON": "perf_event_open",
    "CAP_DAC_READ_SEARCH": "open_by_handle_at",
}

# clone(2) flags that make namespaces: CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC |
# NEWUSER | NEWPID | NEWNET (0x7E020000).
NAMESPACE_FLAGS = 0x7E020000
AF_VSOCK = 40
# personality(2) values that change nothing dangerous: PER_LINUX, PER_LINUX32,
# UNAME26, UNAME26|PER_LINUX32, and 0xffffffff (query the current persona).
SAFE_PERSONAS = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)


def _names(text: str) -> tuple[str, ...]:
    return tuple(text.split())


def _without(cap: str) -> Gate:
    return Gate(caps=frozenset({cap}))


@functools.cache
def default_profile() -> Profile:
    rules = [
        Rule(_names(ALWAYS_ALLOWED), ALLOW),
        # Since Linux 4.8 ptrace cannot be used to get around seccomp, so docker
        # allows it (and process_vm_*, no stronger) to everyone.
        Rule(
            ("ptrace", "process_vm_readv", "process_vm_writev"),
            ALLOW,
            includes=Gate(min_kernel=(4, 8)),
        ),
        Rule(("socket",), ALLOW, (Condition(0, "SCMP_CMP_NE", AF_VSOCK),)),
        *(
            Rule(("personality",), ALLOW, (Condition(0, "SCMP_CMP_EQ", persona),))
            for persona in SAFE_PERSONAS
        ),
        Rule(("arch_prctl", "modify_ldt"), ALLOW, includes=Gate(arches=frozenset({"amd64"}))),
        *(
            Rule(_names(names), ALLOW, includes=Gate(caps=frozenset({cap})))
            for cap, names in BY_CAPABILITY.items()
        ),
        Rule(
            ("clone",),
            ALLOW,
            (Condition(0, "SCMP_CMP_MASKED_EQ", NAMESPACE_FLAGS, 0),),
            excludes=_without("CAP_SYS_ADMIN"),
        ),
        Rule(("clone3",), ENOSYS, excludes=_without("CAP_SYS_ADMIN")),
    ]
    return Profile(default_action=EPERM, rules=tuple(rules))
