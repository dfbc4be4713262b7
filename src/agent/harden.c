/*
 * harden.c: process hardening (see harden.h).
 *
 * The seccomp filter is a hand-written classic-BPF program (<linux/filter.h>, <linux/seccomp.h>)
 * rather than libseccomp: the agent's build links only the static archives it ships, a flat
 * allow-list is 20 lines of BPF, and it costs no binary size. It checks the architecture first
 * (x86_64 or aarch64; x32 syscall numbers are refused), then compares the syscall number against
 * the list; no match = SECCOMP_RET_KILL_PROCESS. Syscalls that exist on only one architecture are
 * included under #ifdef.
 */
#include "harden.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

int ea_harden_check_user(int allow_root, char *err, size_t errlen)
{
    if (geteuid() == 0 && !allow_root) {
        snprintf(err, errlen,
                 "refusing to run as root: run as an unprivileged user (e.g. 65532) or pass --allow-root");
        return -1;
    }
    return 0;
}

int ea_harden_secure_memory(char *err, size_t errlen)
{
    struct rlimit zero = {0, 0};
    if (setrlimit(RLIMIT_CORE, &zero) < 0 || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) {
        snprintf(err, errlen, "--secure-memory: cannot disable core dumps: %s", strerror(errno));
        return -1;
    }
    if (mlockall(MCL_CURRENT | MCL_FUTURE) < 0) {
        snprintf(err, errlen, "--secure-memory: mlockall: %s (needs CAP_IPC_LOCK or a large enough RLIMIT_MEMLOCK)",
                 strerror(errno));
        return -1;
    }
    return 0;
}

static const int allowed[] __attribute__((unused)) = {
    SYS_read, SYS_write, SYS_readv, SYS_writev, SYS_pread64, SYS_pwrite64, SYS_close, SYS_openat, SYS_fstat,
    SYS_newfstatat, SYS_lseek, SYS_mmap, SYS_munmap, SYS_mremap, SYS_mprotect, SYS_brk, SYS_madvise,
    SYS_rt_sigaction, SYS_rt_sigprocmask, SYS_rt_sigreturn, SYS_fcntl, SYS_epoll_pwait, SYS_epoll_ctl,
    SYS_epoll_create1, SYS_socket, SYS_connect, SYS_accept4, SYS_sendto, SYS_recvfrom, SYS_sendmsg, SYS_recvmsg,
    SYS_shutdown, SYS_bind, SYS_listen, SYS_getsockname, SYS_getpeername, SYS_setsockopt, SYS_getsockopt,
    SYS_fsync, SYS_fdatasync, SYS_ftruncate, SYS_renameat, SYS_unlinkat, SYS_mkdirat, SYS_getdents64,
    SYS_clock_gettime, SYS_clock_nanosleep, SYS_nanosleep, SYS_gettimeofday, SYS_getrandom, SYS_futex,
    SYS_exit, SYS_exit_group, SYS_getpid, SYS_gettid, SYS_tgkill, SYS_sched_yield, SYS_restart_syscall,
    SYS_ppoll, SYS_pselect6, SYS_dup, SYS_dup3, SYS_uname, SYS_statx, SYS_prlimit64, SYS_set_robust_list,
    SYS_rseq, SYS_sched_getaffinity,
#ifdef SYS_epoll_wait
    SYS_epoll_wait,
#endif
#ifdef SYS_open
    SYS_open,
#endif
#ifdef SYS_stat
    SYS_stat, SYS_lstat,
#endif
#ifdef SYS_poll
    SYS_poll,
#endif
#ifdef SYS_select
    SYS_select,
#endif
#ifdef SYS_accept
    SYS_accept,
#endif
#ifdef SYS_rename
    SYS_rename, SYS_unlink, SYS_mkdir,
#endif
#ifdef SYS_renameat2
    SYS_renameat2,
#endif
#ifdef SYS_dup2
    SYS_dup2,
#endif
#ifdef SYS_time
    SYS_time,
#endif
};

#if defined(__x86_64__)
#define EA_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define EA_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

/* AddressSanitizer's leak check at exit needs syscalls (ptrace-like thread suspension, clone) the
 * allow-list rightly refuses: sanitizer builds are for tests, so they skip the filter. */
#if defined(__SANITIZE_ADDRESS__)
#define EA_NO_SECCOMP 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EA_NO_SECCOMP 1
#endif
#endif

int ea_harden_seccomp(char *err, size_t errlen)
{
#ifdef EA_NO_SECCOMP
    (void)err;
    (void)errlen;
    return 0;
#elif !defined(EA_AUDIT_ARCH)
    snprintf(err, errlen, "seccomp: architecture not supported by the allow-list");
    return -1;
#else
    enum { N = sizeof allowed / sizeof allowed[0] };
    struct sock_filter prog[N + 8];
    size_t k = 0;
    prog[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    prog[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, EA_AUDIT_ARCH, 1, 0);
    prog[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
    prog[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
#if defined(__x86_64__)
    prog[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u, 0, 1); /* x32 ABI */
    prog[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
#endif
    for (size_t i = 0; i < N; i++) /* match: jump to the ALLOW at the end (N - i - 1 tests + 1 KILL later) */
        prog[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)allowed[i], (unsigned char)(N - i), 0);
    prog[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
    prog[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    struct sock_fprog fp = {.len = (unsigned short)k, .filter = prog};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fp) < 0) {
        snprintf(err, errlen, "seccomp: cannot install the allow-list: %s", strerror(errno));
        return -1;
    }
    return 0;
#endif
}
