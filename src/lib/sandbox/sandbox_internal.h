/*
 * Private to src/lib/sandbox: the messages exchanged between the caller (P), the relay (C1), the
 * container's init (I) and the processes init spawns, the trace record format, and the entry
 * points of each piece. C1 and I are forked from P, so they see P's memory (opts included) as it
 * was at fork time: nothing needs serialising on the way in.
 */
#ifndef ES_SANDBOX_INTERNAL_H
#define ES_SANDBOX_INTERNAL_H

#include <stdint.h>
#include <sys/types.h>

#include "sandbox/sandbox.h"

/* Status pipe (I/A -> P, CLOEXEC write ends): first SB_MSG_PID from the relay, then nothing
 * (EOF = the app exec'd) or one SB_MSG_ERROR. One message is < PIPE_BUF, so writes are atomic. */
enum { SB_MSG_PID = 1, SB_MSG_ERROR = 2 };
typedef struct sb_msg {
    int32_t kind;
    int32_t pid;
    es_error err;
} sb_msg;

/* Control socket (SOCK_SEQPACKET, P <-> I): one exec request, one reply. The request carries
 * SCM_RIGHTS for the stdio fds whose bit is set in fd_mask (in order 0, 1, 2). */
#define SB_REQ_MAX 65536
typedef struct sb_exec_req {
    int32_t timeout_ms;
    uint32_t fd_mask;
    uint32_t argc;
    /* followed by argc NUL-terminated strings */
} sb_exec_req;
typedef struct sb_exec_reply {
    int32_t result; /* 0 ran, 1 timed out, -1 error */
    int32_t exit_status;
    es_error err;
} sb_exec_reply;

/* Trace records appended to the trace memfd by I, read by P (a partial record at the end is
 * left for the next read):
 *   'P' u32 ops u32 len bytes[len]   a path gained new op bits (ops = all bits so far)
 *   'S' u32 nr                       a syscall number seen for the first time
 *   'O'                              the fanotify queue overflowed */
enum { SB_REC_PATH = 'P', SB_REC_SYSCALL = 'S', SB_REC_OVERFLOW = 'O' };

/* Everything the relay and init need, filled by P before fork. */
typedef struct sb_launch {
    const es_sandbox_opts *o;
    const char *rootfs;   /* realpath of o->rootfs */
    const char *statedir; /* empty host dir; init mounts its tmpfs there, inside its namespace */
    const char *hostname;
    const char *resolv_conf; /* host's /etc/resolv.conf contents (may be NULL) */
    const char *host_hosts;  /* host's /etc/hosts (ES_NET_HOST only, may be NULL) */
    int status_wfd;
    int ctl_fd;
    int trace_fd; /* -1 when not tracing */
} sb_launch;

/* The relay: unshares the namespaces, forks init, reports init's pid, relays its exit status. */
void sb_relay_main(sb_launch *l) __attribute__((noreturn));

/* In init, in its new namespaces: overlay root, /proc /dev /tmp /sys, pivot_root, /etc files,
 * hostname, lo (sandbox_rootfs.c). */
int sb_build_container(const sb_launch *l, es_error *err);

/* ---- inside the container (sandbox_user.c) ---- */
typedef struct sb_identity {
    uid_t uid;
    gid_t gid;
    gid_t *groups;
    size_t n_groups;
    char *home;
} sb_identity;
/* Resolves "user[:group]" against /etc/passwd and /etc/group of the current root. */
int sb_resolve_user(const char *spec, sb_identity *id, es_error *err);
void sb_identity_free(sb_identity *id);
/* env + PATH/HOME/HOSTNAME defaults when absent; NULL-terminated, malloc'd strings. */
char **sb_build_env(char *const *env, const char *home, const char *hostname);
void sb_free_strv(char **v);
/* Finds argv0 as execve would find it through PATH (from env) under the current root; relative
 * names with a '/' are taken relative to workdir. Returns a malloc'd path or NULL with ES_ERUN
 * "command not found in image: X". */
char *sb_find_command(const char *argv0, char *const *env, const char *workdir, es_error *err);
/* mkdir -p */
int sb_mkdir_p(const char *path, mode_t mode);

/* ---- the tracer (sandbox_trace.c), used by init ---- */
typedef struct sb_tracer sb_tracer;
/* fanotify on the mount at "/" (call after pivot_root) when trace; records go to trace_fd. */
sb_tracer *sb_tracer_new(int trace_fd, int trace_syscalls, es_error *err);
void sb_tracer_free(sb_tracer *t);
int sb_tracer_fanotify_fd(sb_tracer *t); /* -1 if none */
void sb_tracer_drain_fanotify(sb_tracer *t);
/* In a freshly forked child, before exec: installs the SECCOMP_RET_TRACE filter. */
int sb_tracer_install_filter(int trace_syscalls, es_error *err);
/* In init, after forking a child that waits on a sync pipe: PTRACE_SEIZE with our options. */
int sb_tracer_seize(pid_t pid, es_error *err);
/* Handles one waitpid() stop of a tracee and resumes it. */
void sb_tracer_on_stop(sb_tracer *t, pid_t pid, int status);
/* A tracee exited: forget its per-thread state. */
void sb_tracer_on_exit(sb_tracer *t, pid_t pid);

#endif
